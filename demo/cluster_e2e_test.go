package demo_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/demo"
	"github.com/rtcio/rtcio-router/internal/clustertest"
)

// clusterWindow is the recovery window of the cluster the call runs on:
// longer than a reconnect takes here; short, so that a session the cluster
// failed to keep is cleaned up, and the other tab told, before the test
// ends.
const clusterWindow = 6 * time.Second

// TestE2ECallSurvivesNodeRestart is a deploy under a live call: two tabs of
// the demo page in headless Chromium, on the two nodes of the example
// cluster (HAProxy, Redis, recovery on), in a call with video both ways; the
// node serving one tab is restarted (SIGTERM, started again, back in
// HAProxy). That tab's signaling comes back on its session (recovered, same
// id) and neither tab hears the other leave: each keeps its peer connection
// "connected" all along, and the video keeps decoding.
func TestE2ECallSurvivesNodeRestart(t *testing.T) {
	chromium := needBrowser(t)
	c := clustertest.Start(t, clustertest.HAProxyConfig(t), "  recovery: "+clusterWindow.String()+"\n")

	ctx, cancel := context.WithTimeout(context.Background(), e2eBudget)
	t.Cleanup(cancel)
	browser := startBrowser(t, ctx, chromium)

	// Each page in its own browser context keeps its own SERVERID cookie,
	// so leastconn puts the second on the other node. The default
	// transport: long-polling, then the upgrade, both sticky by the cookie.
	room := "cluster-" + randomHex(t, 12)
	open := func(name string) (*page, snapshot) {
		u := fmt.Sprintf("%s%s?name=%s&loopback=1#%s", c.LB.URL(), demo.Path, url.QueryEscape(name), room)
		p := openPage(t, browser, name, u)
		return p, p.waitFor("signaling up", 10*time.Second, func(s snapshot) bool { return s.Connected && s.ID != "" })
	}
	alice, aliceSnap := open("alice")
	bob, bobSnap := open("bob")
	aliceNode, bobNode := c.NodeOf(t, aliceSnap.ID), c.NodeOf(t, bobSnap.ID)
	t.Logf("alice on %s, bob on %s", aliceNode.Name, bobNode.Name)
	if aliceNode == bobNode {
		t.Fatalf("both tabs on %s: HAProxy did not spread them", bobNode.Name)
	}
	alice.waitFor("connected to bob", 15*time.Second, connectedTo(bobSnap.ID))
	bob.waitFor("connected to alice", 15*time.Second, connectedTo(aliceSnap.ID))
	alice.waitLiveVideo(bobSnap.ID)
	bob.waitLiveVideo(aliceSnap.ID)
	before := map[*page]int{
		alice: alice.snapshot().peer(bobSnap.ID).FramesDecoded,
		bob:   bob.snapshot().peer(aliceSnap.ID).FramesDecoded,
	}

	// Watch both tabs through the restart: a peer connection that leaves
	// "connected", or a tile that goes, even for a moment, is a dropped call.
	// Bob's signaling is watched too: how long it was seen down (to the
	// 100 ms of the polling), reported, not asserted.
	watch, stopWatch := context.WithCancel(context.Background())
	seen := make(chan []string, 1)
	var down time.Duration
	go func() {
		var bad []string
		var since time.Time
		for watch.Err() == nil {
			if s, err := bob.trySnapshot(2 * time.Second); err == nil {
				switch {
				case !s.Connected && since.IsZero():
					since = time.Now()
				case s.Connected && !since.IsZero():
					down += time.Since(since)
					since = time.Time{}
				}
			}
			for _, w := range []struct {
				p     *page
				other string
			}{{alice, bobSnap.ID}, {bob, aliceSnap.ID}} {
				s, err := w.p.trySnapshot(2 * time.Second)
				if err != nil {
					continue
				}
				if p := s.peer(w.other); p == nil || p.State != "connected" {
					state := "gone"
					if p != nil {
						state = p.State
					}
					bad = append(bad, fmt.Sprintf("%s: peer connection %s", w.p.name, state))
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		seen <- bad
	}()

	i := slices.Index(c.Nodes, bobNode)
	c.Restart(t, i, syscall.SIGTERM)
	s := bob.waitFor("signaling back", 15*time.Second, func(s snapshot) bool { return s.Connected && s.ID != "" })
	if !s.Recovered || s.ID != bobSnap.ID {
		t.Errorf("bob reconnected as %s (recovered=%v), want his session %s back", s.ID, s.Recovered, bobSnap.ID)
	}
	// Past the window (and the cleanup one second after it): a session the
	// cluster lost would be cleaned up by now and alice told.
	time.Sleep(clusterWindow + 2*time.Second)
	stopWatch()
	bad := <-seen
	t.Logf("bob's signaling was down for about %v", down.Round(100*time.Millisecond))
	if len(bad) > 0 {
		t.Errorf("the call dropped during the restart (%d of the checks every 100ms), first: %q", len(bad), bad[0])
	}
	for _, w := range []struct {
		p     *page
		other string
	}{{alice, bobSnap.ID}, {bob, aliceSnap.ID}} {
		s := w.p.snapshot()
		if len(s.Left) > 0 {
			t.Errorf("%s heard %v leave", w.p.name, s.Left)
		}
		w.p.waitLiveVideo(w.other)
		t.Logf("%s: frames decoded from the other tab %d before the restart, %d after", w.p.name,
			before[w.p], w.p.snapshot().peer(w.other).FramesDecoded)
		w.p.noErrors()
	}
}
