package router

import (
	"errors"
	"fmt"

	"github.com/rtcio/rtcio-router/rules"
)

// Reload reads the rules file again and, only if all of it compiles, swaps
// it in. A bad file changes nothing. Settings that the running listener
// cannot take live are refused with both values named.
func (r *Router) Reload() error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	set, err := r.load()
	if err == nil {
		err = hotSwappable(r.Rules().Server, set.Server)
	}
	if err != nil {
		r.reloadsFailed.Add(1)
		r.lastReloadOK.Store(false)
		msg := err.Error()
		r.lastReload.Store(&msg)
		return fmt.Errorf("reload %s: %w", r.opts.RulesFile, err)
	}
	r.st.mu.Lock()
	r.st.syncStores(set)
	r.rules.Store(set)
	r.st.mu.Unlock()
	r.reloadsOK.Add(1)
	r.lastReloadOK.Store(true)
	r.lastReload.Store(nil)
	r.log.Info("rules reloaded", "file", r.opts.RulesFile, "rules", set.Len())
	return nil
}

// hotSwappable refuses a reload that changes settings fixed at start-up.
func hotSwappable(old, next rules.Server) error {
	var errs []error
	check := func(name string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			errs = append(errs, fmt.Errorf("reload not supported for server.%s: old=%q, new=%q (restart to change it)", name, fmt.Sprint(a), fmt.Sprint(b)))
		}
	}
	check("listen", old.Listen, next.Listen)
	check("path", old.Path, next.Path)
	check("cors_origins", old.Origins, next.Origins)
	check("max_payload", old.MaxPayload, next.MaxPayload)
	check("ping_interval", old.PingInterval, next.PingInterval)
	check("ping_timeout", old.PingTimeout, next.PingTimeout)
	check("max_outgoing", old.MaxOutgoing, next.MaxOutgoing)
	check("max_pending", old.MaxPending, next.MaxPending)
	check("recovery", old.Recovery, next.Recovery)
	return errors.Join(errs...)
}
