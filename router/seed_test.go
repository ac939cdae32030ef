package router_test

import (
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// TestSeedBehaviour drives the built-in rtcio.yaml with the official
// socket.io-client and checks every event of the reference quickstart
// server, payloads and order included, on each transport.
func TestSeedBehaviour(t *testing.T) {
	for _, kind := range clientKinds {
		for _, mode := range transportModes {
			if kind.name == "go" && mode.name != "websocket" {
				// The Go client v3.0.6 never flushes its polling writes (its
				// events reach the server only at disconnect), so it is
				// checked over WebSocket; the JS client covers polling.
				continue
			}
			t.Run(kind.name+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				_, url := startRouter(t, builtinRules(t))
				seedScenario(t, []string{url}, func(js *jsclient.Process, url, name string) peer {
					return kind.connect(t, js, url, name, mode.name, mode.opts)
				})
			})
		}
	}
}

// seedScenario walks through every behaviour of the reference server on
// the built-in rules served at urls: one server, or the nodes of a
// cluster, which the clients are spread over in turn.
func seedScenario(t *testing.T, urls []string, dial func(js *jsclient.Process, url, name string) peer) {
	{
		{
			js := jsclient.Start(t)
			next := 0
			connect := func(name string) peer {
				url := urls[next%len(urls)]
				next++
				return dial(js, url, name)
			}
			alice, bob, dave := connect("alice"), connect("bob"), connect("dave")
			a, b, d := alice.ID(), bob.ID(), dave.ID()

			// Dave is in another room and must hear nothing of r1.
			dave.Emit("join-room", map[string]any{"roomId": "r2", "name": "dave"})

			// The first joiner has nobody to hear about.
			alice.Emit("join-room", map[string]any{"roomId": "r1", "name": "alice"})
			alice.ExpectNothing(200 * time.Millisecond)

			// Bob is backfilled with alice; alice hears of bob, then is asked to offer.
			bob.Emit("join-room", map[string]any{"roomId": "r1", "name": "bob"})
			bob.Expect(t, "user-connected", map[string]any{"id": a, "name": "alice"})
			alice.Expect(t, "user-connected", map[string]any{"id": b, "name": "bob"})
			alice.Expect(t, "#rtcio:init-offer", map[string]any{"source": b})

			// media-state is relayed verbatim and cached only with boolean mic and cam.
			ms := map[string]any{"roomId": "r1", "mic": false, "cam": true, "id": a}
			alice.Emit("media-state", ms)
			bob.Expect(t, "media-state", ms)
			odd := map[string]any{"roomId": "r1", "mic": "off", "cam": true, "id": b, "extra": []any{1, "x"}}
			bob.Emit("media-state", odd)
			alice.Expect(t, "media-state", odd)

			// A late joiner gets each member in join order with its cached state.
			carol := connect("carol")
			c := carol.ID()
			carol.Emit("join-room", map[string]any{"roomId": "r1", "name": "carol"})
			carol.Expect(t, "user-connected", map[string]any{"id": a, "name": "alice"})
			carol.Expect(t, "media-state", map[string]any{"id": a, "roomId": "r1", "mic": false, "cam": true})
			carol.Expect(t, "user-connected", map[string]any{"id": b, "name": "bob"})
			for _, peer := range []peer{alice, bob} {
				peer.Expect(t, "user-connected", map[string]any{"id": c, "name": "carol"})
				peer.Expect(t, "#rtcio:init-offer", map[string]any{"source": c})
			}

			// stopScreenShare is a pass-through to the rest of the room.
			share := map[string]any{"roomId": "r1", "streamId": "s-1"}
			carol.Emit("stopScreenShare", share)
			alice.Expect(t, "stopScreenShare", share)
			bob.Expect(t, "stopScreenShare", share)

			// Events that fail validation are dropped without a word.
			carol.Emit("media-state", map[string]any{"mic": true})
			carol.Emit("stopScreenShare", map[string]any{"roomId": ""})
			carol.Emit("join-room", nil)

			// Leaving: peer-left first (so WebRTC is torn down at once), then presence.
			bob.Close()
			for _, peer := range []peer{alice, carol} {
				peer.Expect(t, "#rtcio:peer-left", map[string]any{"id": b})
				peer.Expect(t, "user-disconnected", map[string]any{"id": b})
			}

			// Bob's cached state went with him: a new joiner hears only of the others.
			erin := connect("erin")
			erin.Emit("join-room", map[string]any{"roomId": "r1", "name": "erin"})
			erin.Expect(t, "user-connected", map[string]any{"id": a, "name": "alice"})
			erin.Expect(t, "media-state", map[string]any{"id": a, "roomId": "r1", "mic": false, "cam": true})
			erin.Expect(t, "user-connected", map[string]any{"id": c, "name": "carol"})
			erin.ExpectNothing(200 * time.Millisecond)

			dave.ExpectNothing(100 * time.Millisecond)
			if d == "" {
				t.Fatal("dave has no id")
			}
		}
	}
}
