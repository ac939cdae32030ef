package router

// KillForTest makes r die as far as its cluster can tell, as a SIGKILL
// would: its heartbeat and bus stop and its connection to Redis closes
// first, so nothing it does afterwards (the cleanup its closing sockets
// start) reaches the cluster; then its sockets' connections close.
func KillForTest(r *Router) {
	r.cl.leave()
	r.tr.Close()
}
