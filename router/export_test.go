package router

// KillForTest makes r die as far as its cluster can tell, as a SIGKILL
// would: its heartbeat and bus stop and its connection to Redis closes
// first, so nothing it does afterwards (the cleanup its closing sockets
// start) reaches the cluster; then its sockets' connections close.
func KillForTest(r *Router) {
	r.cl.leave()
	r.tr.Close()
}

// IgnoreTakeoverNoticesForTest makes r deaf to the word that a client of
// its recovered its session on another node (as when pub/sub loses it),
// so that r finds out only when it times the old connection out.
func IgnoreTakeoverNoticesForTest(r *Router) { r.cl.deafToTakeovers.Store(true) }

// CutRedisForTest makes r behave as when its watcher found Redis
// unreachable (every call but the watcher's probe fails at once), without
// touching Redis: the probe then finds it reachable again, as after a
// network partition that kept Redis's data, and the node catches up.
func CutRedisForTest(r *Router) {
	r.cl.up.Store(false)
	r.cl.gate.down.Store(true)
}
