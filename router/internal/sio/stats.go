package sio

import "sync/atomic"

// Stats are the server's running totals since New, for metrics: what the
// Handler cannot see from above (what the engine writes, which clients the
// guards dropped, which handshakes were turned away before Admit).
type Stats struct {
	// PacketsSent and BytesSent count engine packets (and their payload
	// bytes) handed to a transport to be written: events, acks, pings.
	PacketsSent, BytesSent uint64
	// SlowConsumers counts connections dropped because their outgoing
	// backlog went over MaxOutgoing or MaxOutgoingBytes.
	SlowConsumers uint64
	// Floods counts connections closed because their inbound backlog went
	// over MaxPending.
	Floods uint64
	// RefusedOrigin counts handshakes refused for their Origin;
	// RefusedBusy those refused because maxHandshakes were in flight.
	RefusedOrigin, RefusedBusy uint64
}

// stats are the atomic counters behind Stats.
type stats struct {
	packetsSent, bytesSent     atomic.Uint64
	slowConsumers, floods      atomic.Uint64
	refusedOrigin, refusedBusy atomic.Uint64
}

// Stats returns the running totals. Cheap: a handful of atomic loads, so a
// metrics scrape may call it every time.
func (t *Server) Stats() Stats {
	return Stats{
		PacketsSent: t.stats.packetsSent.Load(), BytesSent: t.stats.bytesSent.Load(),
		SlowConsumers: t.stats.slowConsumers.Load(), Floods: t.stats.floods.Load(),
		RefusedOrigin: t.stats.refusedOrigin.Load(), RefusedBusy: t.stats.refusedBusy.Load(),
	}
}

// Transport names the transport s's connection uses now: "polling" or
// "websocket" (after an upgrade, the new one); "" once it is gone.
func (s *Socket) Transport() string {
	if s.lean != nil {
		if !s.lean.open.Load() {
			return ""
		}
		return "websocket"
	}
	conn := s.ls.Conn()
	if conn == nil {
		return ""
	}
	tr := conn.Transport()
	if tr == nil {
		return ""
	}
	return tr.Name()
}
