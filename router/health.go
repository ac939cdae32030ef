package router

import (
	"net/http"
)

// serveHealth answers GET /health for load balancers and operators: 200
// while serving, 503 while draining or, in a cluster, while Redis is
// unreachable (new clients should go to a node that can see the cluster),
// with the socket counts and the state of the last reload.
func (r *Router) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	status, code := "ok", http.StatusOK
	if r.draining.Load() {
		status, code = "draining", http.StatusServiceUnavailable
	}
	r.st.mu.RLock()
	// Suspended sockets count: they keep their id, rooms and state, and
	// Close waits for them too.
	n, suspended := r.st.count(), r.suspendedCount()
	r.st.mu.RUnlock()
	body := map[string]any{
		"status": status, "sockets": n, "suspended": suspended, "rules": r.Rules().Len(),
		"last_reload_ok": r.lastReloadOK.Load(), "reloads_ok": r.reloadsOK.Load(), "reloads_failed": r.reloadsFailed.Load(),
	}
	if e := r.lastReload.Load(); e != nil {
		body["last_reload_error"] = *e
	}
	if r.cl != nil {
		body["node"] = r.cl.node
		body["redis"] = "up"
		if !r.cl.up.Load() {
			body["redis"] = "down"
			if code == http.StatusOK {
				status, code = "redis down", http.StatusServiceUnavailable
				body["status"] = status
			}
		}
	}
	w.WriteHeader(code)
	_ = jsonEncode(w, body)
}
