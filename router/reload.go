package router

import (
	"errors"
	"fmt"
)

// Reload reads the rules file again and, only if all of it compiles, swaps
// it in. A bad file changes nothing. Settings that the running listener
// cannot take live are refused with both values named.
func (r *Router) Reload() error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	set, sum, err := r.load()
	if err == nil {
		old := r.Rules()
		err = errors.Join(old.Server.FixedChanges(set.Server), old.Cluster.FixedChanges(set.Cluster), old.Metrics.FixedChanges(set.Metrics),
			old.Admin.FixedChanges(set.Admin))
	}
	if err != nil {
		r.m.reloadRejected()
		r.reloadsFailed.Add(1)
		r.lastReloadOK.Store(false)
		msg := err.Error()
		r.lastReload.Store(&msg)
		return fmt.Errorf("reload %s: %w", r.opts.RulesFile, err)
	}
	r.m.loadRules(set, r.opts.RulesFile, sum) // before the swap: events of set find its series
	r.st.mu.Lock()
	r.st.syncStores(set)
	r.rules.Store(set)
	r.st.mu.Unlock()
	r.m.reloaded()
	r.reloadsOK.Add(1)
	r.lastReloadOK.Store(true)
	r.lastReload.Store(nil)
	r.log.Info("rules reloaded", "file", r.opts.RulesFile, "rules", set.Len())
	return nil
}
