package router

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtcio/rtcio-router/rules"
)

func mustParse(t *testing.T, src string) *rules.Set {
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
	st.stores["keep"].entries["s1"] = "kept"
	st.stores["rescoped"].entries["r1"] = "old"
	st.stores["gone"].entries["k"] = "old"
	keep := st.stores["keep"]

	st.syncStores(mustParse(t, "stores: {keep: {scope: socket}, rescoped: {scope: global}, fresh: {scope: room}}\nrules: []\n"))
	if st.stores["keep"] != keep || st.stores["keep"].entries["s1"] != "kept" {
		t.Error("store with same name and scope lost its values")
	}
	if len(st.stores["rescoped"].entries) != 0 || st.stores["rescoped"].scope != rules.ScopeGlobal {
		t.Error("store whose scope changed kept old values")
	}
	if st.stores["fresh"] == nil || len(st.stores["fresh"].entries) != 0 {
		t.Error("new store not empty")
	}
	if _, ok := st.stores["gone"]; ok {
		t.Error("removed store still there")
	}
	if _, ok := st.storeView["gone"]; ok || st.storeView["keep"] == nil {
		t.Error("expression view of stores not rebuilt")
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
	defer r.tr.io.Close(nil)
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
