package router

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rtcio/rtcio-router/rules"
)

func mustParse(t testing.TB, src string) *rules.Set {
	t.Helper()
	set, err := rules.Parse("t.yaml", []byte(src), rules.Options{Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestStoresAcrossReload pins what survives a reload: a store that keeps
// its name and scope keeps its values; a changed scope or a new store
// starts empty; a removed store is dropped.
func TestStoresAcrossReload(t *testing.T) {
	st := newState()
	st.syncStores(mustParse(t, "stores: {keep: {scope: socket}, rescoped: {scope: room}, gone: {scope: global}}\nrules: []\n"))
	mem := st.registry.(*memRegistry)
	mem.stores["keep"].entries["s1"] = "kept"
	mem.stores["rescoped"].entries["r1"] = "old"
	mem.stores["gone"].entries["k"] = "old"
	keep := mem.stores["keep"]

	st.syncStores(mustParse(t, "stores: {keep: {scope: socket}, rescoped: {scope: global}, fresh: {scope: room}}\nrules: []\n"))
	if mem.stores["keep"] != keep || mem.stores["keep"].entries["s1"] != "kept" {
		t.Error("store with same name and scope lost its values")
	}
	if len(mem.stores["rescoped"].entries) != 0 || mem.stores["rescoped"].scope != rules.ScopeGlobal {
		t.Error("store whose scope changed kept old values")
	}
	if mem.stores["fresh"] == nil || len(mem.stores["fresh"].entries) != 0 {
		t.Error("new store not empty")
	}
	if _, ok := mem.stores["gone"]; ok {
		t.Error("removed store still there")
	}
}

// TestReloadRefusesFixedSettings: a change under server: is refused whole,
// naming old and new values, and the running rules stay.
func TestReloadRefusesFixedSettings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rtcio.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("server: {listen: \":3001\"}\nrules:\n  - event: a\n    do: [{ack: 1}]\n")
	r, err := New(Options{RulesFile: path, Environ: map[string]string{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.tr.Close()
	old := r.Rules()

	write("server: {listen: \":4000\"}\nrules:\n  - event: b\n    do: [{ack: 1}]\n")
	err = r.Reload()
	if err == nil || !strings.Contains(err.Error(), `reload not supported for server.listen: old=":3001", new=":4000"`) {
		t.Fatalf("want refused listen change, got %v", err)
	}
	if r.Rules() != old || r.lastReloadOK.Load() {
		t.Fatal("a refused reload changed the rules or the health flag")
	}

	write("server: {listen: \":3001\"}\nrules:\n  - event: b\n    do: [{ack: \"x\"}]\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if len(r.Rules().For("b")) != 1 || len(r.Rules().For("a")) != 0 || !r.lastReloadOK.Load() {
		t.Fatal("good reload not applied")
	}

	write("rules:\n  - event: c\n    do: [{ack: nope}]\n")
	err = r.Reload()
	if err == nil || !strings.Contains(err.Error(), path+`:3:16: rule "c": ack: unknown name "nope"`) {
		t.Fatalf("want positioned error, got %v", err)
	}
	if len(r.Rules().For("b")) != 1 {
		t.Fatal("bad reload changed the rules")
	}
}

// TestRejectedReloadKeepsState: a reload that is refused (a rule that does
// not compile, a YAML error, a change under server: that also rescopes a
// store) leaves the state alone. After each one, /health reports the error
// (last_reload_ok false, last_reload_error with the reason), and a late
// joiner, handled by the old rules, is backfilled with the media state
// that a room member stored before the reload. A good reload afterwards
// clears the error and keeps the store too.
func TestRejectedReloadKeepsState(t *testing.T) {
	base, err := os.ReadFile("../rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rtcio.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(string(base))
	l, err := NewLocal(Options{RulesFile: path, Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	send := func(id, event string, data any) {
		t.Helper()
		if _, _, err := l.Send(id, event, []any{data}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Connect("a", nil, nil); err != nil {
		t.Fatal(err)
	}
	send("a", "join-room", map[string]any{"roomId": "r1", "name": "Alice"})
	send("a", "media-state", map[string]any{"roomId": "r1", "mic": false, "cam": true})
	l.Deliveries()

	health := func() map[string]any {
		t.Helper()
		rec := httptest.NewRecorder()
		l.r.serveHealth(rec, httptest.NewRequest("GET", "/health", nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("health: %v: %s", err, rec.Body)
		}
		return body
	}
	// lateJoiner joins r1 under the rules in force and must be told of
	// Alice and of her media state, exactly.
	joins := 0
	lateJoiner := func(after string) {
		t.Helper()
		joins++
		id := fmt.Sprint("late", joins)
		if err := l.Connect(id, nil, nil); err != nil {
			t.Fatal(err)
		}
		send(id, "join-room", map[string]any{"roomId": "r1", "name": id})
		want := []Delivery{
			{To: id, Event: "user-connected", Args: []any{map[string]any{"id": "a", "name": "Alice"}}},
			{To: id, Event: "media-state", Args: []any{map[string]any{"id": "a", "roomId": "r1", "mic": false, "cam": true}}},
			{To: "a", Event: "user-connected", Args: []any{map[string]any{"id": id, "name": id}}},
			{To: "a", Event: "#rtcio:init-offer", Args: []any{map[string]any{"source": id}}},
		}
		if got := l.Deliveries(); !reflect.DeepEqual(normalizeDeliveries(t, got), normalizeDeliveries(t, want)) {
			t.Fatalf("after %s, a late joiner got\n  %v\nwant\n  %v", after, got, want)
		}
		if err := l.Disconnect(id, "client namespace disconnect"); err != nil {
			t.Fatal(err)
		}
		l.Deliveries()
	}

	withListen := strings.NewReplacer(`listen: ":3001"`, `listen: ":4000"`,
		"    scope: socket", "    scope: global", "      - set: media\n", "      - set: media\n        key: socket.id\n")
	for i, bad := range []struct {
		name, src, reason string
	}{
		{"a rule that does not compile", string(base) + "\n  - event: typo\n    do:\n      - ack: dta.x\n", `unknown name "dta"`},
		{"a YAML error", string(base) + "\n  - event: [\n", path + ":"},
		{"a server setting change that also rescopes the store", withListen.Replace(string(base)),
			`reload not supported for server.listen: old=":3001", new=":4000"`},
	} {
		write(bad.src)
		if err := l.r.Reload(); err == nil {
			t.Fatalf("%s: reload accepted", bad.name)
		}
		h := health()
		msg, _ := h["last_reload_error"].(string)
		if h["last_reload_ok"] != false || !strings.Contains(msg, bad.reason) || h["reloads_failed"] != float64(i+1) {
			t.Fatalf("%s: health %v, want last_reload_ok false and an error with %q", bad.name, h, bad.reason)
		}
		if got := l.Store("media"); !reflect.DeepEqual(got, map[string]any{"a": map[string]any{"mic": false, "cam": true}}) {
			t.Fatalf("%s: media store %v", bad.name, got)
		}
		lateJoiner(bad.name)
	}

	write(string(base) + "\n  - event: extra\n    do:\n      - ack: 1\n")
	if err := l.r.Reload(); err != nil {
		t.Fatal(err)
	}
	if h := health(); h["last_reload_ok"] != true || h["last_reload_error"] != nil || h["reloads_ok"] != float64(1) {
		t.Fatalf("health after a good reload: %v", h)
	}
	lateJoiner("a good reload")
}

// normalizeDeliveries round-trips deliveries through JSON, as a client
// would see them, so that numbers and maps compare by value.
func normalizeDeliveries(t *testing.T, ds []Delivery) any {
	t.Helper()
	b, err := json.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
