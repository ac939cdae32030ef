package rules

import (
	"fmt"
	"strings"
)

// Summary describes a compiled Set in a few lines: settings, stores, then
// one line per rule with its checks and actions in order. `check` prints
// it, and golden tests pin it, so a change in how a file compiles shows up
// in review.
func (s *Set) Summary() []string {
	var out []string
	sv := s.Server
	server := fmt.Sprintf("server: listen %s, path %s, origins %s, max_payload %d, ping %s/%s",
		sv.Listen, sv.Path, strings.Join(sv.Origins, ","), sv.MaxPayload, sv.PingInterval, sv.PingTimeout)
	if sv.Recovery > 0 {
		server += fmt.Sprintf(", recovery %s", sv.Recovery)
	}
	out = append(out, server)
	out = append(out, fmt.Sprintf("relay: shared_room_only %t", s.Relay.SharedRoomOnly))
	if a := s.Auth.describe(); a != "" {
		out = append(out, "auth: "+a)
	}
	if lim := s.Limits.describe(); lim != "" {
		out = append(out, "limits: "+lim)
	}
	for _, st := range s.Stores {
		out = append(out, fmt.Sprintf("store %s: scope %s", st.Name, st.Scope))
	}
	for _, r := range s.Rules {
		name := r.Event
		if r.Name != r.Event {
			name = fmt.Sprintf("%s (%s)", r.Name, r.Event)
		}
		out = append(out, fmt.Sprintf("rule %s at %d:%d: %d checks; %s", name, r.Pos.Line, r.Pos.Col, len(r.Validate), describeActions(r.Actions)))
	}
	return out
}

func describeActions(as []Action) string {
	parts := make([]string, 0, len(as))
	for _, a := range as {
		parts = append(parts, describeAction(a))
	}
	return strings.Join(parts, ", ")
}

func describeAction(a Action) string {
	s := a.describe()
	if a.Common().If != nil {
		s += " (if)"
	}
	return s
}
