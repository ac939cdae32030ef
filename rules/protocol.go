package rules

// The rtc.io protocol's event names: the one place they are spelled. The
// router implements the relay and peer-left itself; rules may emit only
// the init-offer; clients may send no other #rtcio: event.
const (
	// ProtocolPrefix starts every rtc.io protocol event; rules cannot
	// handle such events, and may emit only EventInitOffer of them.
	ProtocolPrefix = "#rtcio:"
	// EventMessage is the relay: {source, target, data} forwarded to the
	// socket target, with source stamped by the server.
	EventMessage = ProtocolPrefix + "message"
	// EventPeerLeft {id} tells a room that a peer left it, so its members
	// drop their peer connection at once.
	EventPeerLeft = ProtocolPrefix + "peer-left"
	// EventInitOffer {source} asks the members of a room to start the
	// WebRTC offer to a newcomer; the built-in rules emit it on join.
	EventInitOffer = ProtocolPrefix + "init-offer"
)

// The members of a relay envelope the router reads and writes; the rest
// (data) is the peers' business and forwarded as sent.
const (
	// EnvelopeTarget is the socket id the envelope goes to.
	EnvelopeTarget = "target"
	// EnvelopeSource is the sender's id, stamped by the router so peers
	// can trust it.
	EnvelopeSource = "source"
)
