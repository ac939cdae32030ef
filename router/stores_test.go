package router

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rtcio/rtcio-router/internal/redistest"
)

// storeWritesRules write stores and read them back in later actions of the
// same event, in every way expressions read stores.
const storeWritesRules = `
stores:
  hits: { scope: global }
  media: { scope: socket }
  rooms: { scope: room }
rules:
  - event: bump
    do:
      - set: hits
        key: '"n"'
        value: (stores.hits.n ?? 0) + 1
      - set: media
        field: '"mic"'
        value: data.mic
      - ack:
          n: stores.hits.n
          has: socket.id in stores.media
          hits: stores.hits
          mic: stores.media[socket.id]?.mic
          others: len(stores.media)
          all: keys(stores)
  - event: clear
    do:
      - delete: media
      - ack:
          mic: stores.media[socket.id]?.mic
          mine: socket.id in stores.media
  - event: peek
    do:
      - ack: stores.hits.n
  - event: solo
    do:
      - join: data.room
      - set: rooms
        key: data.room
        value: 1
      - let:
          before: stores.rooms[data.room]
      - leave: data.room
      - ack:
          before: before
          after: stores.rooms[data.room] ?? "gone"
`

// TestStoreReadsSeeEarlierWrites: an expression reads what an earlier
// action of its event wrote (or a leave dropped), on each registry, now
// that expressions read store entries from the registry one at a time,
// through the event's reads over Redis; and an event does not read
// entries another event kept.
func TestStoreReadsSeeEarlierWrites(t *testing.T) {
	srv := redistest.Start(t)
	for _, impl := range []string{"memory", "redis"} {
		t.Run(impl, func(t *testing.T) {
			l, err := NewLocal(Options{RulesFile: "stores.yaml", Source: []byte(storeWritesRules), Environ: map[string]string{}})
			if err != nil {
				t.Fatal(err)
			}
			if impl == "redis" {
				reg := newTestRedisRegistry(t, newTestRedisClient(t, srv), "A")
				l.r.st.registry = reg
				reg.syncStores(l.Rules())
				t.Cleanup(func() {
					if n := reg.failures(); n != 0 {
						t.Errorf("%d failed Redis calls", n)
					}
				})
			}
			for _, id := range []string{"a", "b"} {
				if err := l.Connect(id, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			for _, step := range []struct{ from, event, data, want string }{
				{"a", "bump", `{"mic":true}`, `{"all":["hits","media","rooms"],"has":true,"hits":{"n":1},"mic":true,"n":1,"others":1}`},
				{"b", "bump", `{"mic":false}`, `{"all":["hits","media","rooms"],"has":true,"hits":{"n":2},"mic":false,"n":2,"others":2}`},
				{"a", "clear", `{}`, `{"mine":false}`},
				{"b", "bump", `{"mic":true}`, `{"all":["hits","media","rooms"],"has":true,"hits":{"n":3},"mic":true,"n":3,"others":1}`},
			} {
				var data any
				if err := json.Unmarshal([]byte(step.data), &data); err != nil {
					t.Fatal(err)
				}
				ack, _, err := l.Send(step.from, step.event, []any{data}, true)
				if err != nil {
					t.Fatal(err)
				}
				if got := sortedJSON(t, ack); got != step.want {
					t.Errorf("%s %s: ack %s, want %s", step.from, step.event, got, step.want)
				}
			}
			// Written behind the state's back, as another node would.
			for _, want := range []int{3, 7} {
				if ack, _, err := l.Send("a", "peek", []any{nil}, true); err != nil || ack != want {
					t.Errorf("peek: %v %v, want %d", ack, err, want)
				}
				l.r.st.registry.storeSet("hits", "n", 7)
			}
			ack, _, err := l.Send("a", "solo", []any{map[string]any{"room": "alone"}}, true)
			if got := sortedJSON(t, ack); err != nil || got != `{"after":"gone","before":1}` {
				t.Errorf("solo: %s %v", got, err)
			}
		})
	}
}

// sortedJSON is v as JSON with lists of strings sorted (keys(stores)
// comes in map order).
func sortedJSON(t *testing.T, v any) string {
	t.Helper()
	if m, ok := v.(map[string]any); ok {
		if all, ok := m["all"].([]any); ok {
			slices.SortFunc(all, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
