package router

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/rtcio/rtcio-router/internal/redistest"
	"github.com/rtcio/rtcio-router/rules"
)

// registryImpls are the registry implementations the conformance suite
// holds to the guarantees in registry's doc comment. A new implementation
// (one shared by several nodes) is added here.
var registryImpls = []struct {
	name string
	new  func(t *testing.T) registry
}{
	{"memory", func(*testing.T) registry { return newMemRegistry() }},
	{"redis", func(t *testing.T) registry {
		return newTestRedisRegistry(t, newTestRedisClient(t, redistest.Start(t)), "n1")
	}},
}

// storesSet is a rules set with one store of each scope.
func storesSet(t testing.TB, scopes map[string]string) *rules.Set {
	t.Helper()
	src := "stores:\n"
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range scopes {
			if !yield(k) {
				return
			}
		}
	}) {
		src += "  " + name + ": { scope: " + scopes[name] + " }\n"
	}
	set, err := rules.Parse("t.yaml", []byte(src+"rules: []\n"), rules.Options{Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestRegistryConformance runs every registry implementation through the
// same sequences of operations and checks each guarantee.
func TestRegistryConformance(t *testing.T) {
	for _, impl := range registryImpls {
		t.Run(impl.name, func(t *testing.T) { runRegistryCases(t, impl.new) })
	}
}

// runRegistryCases runs every case of registryCases on a registry newReg
// makes for it, with three sockets and a store of each scope.
func runRegistryCases(t *testing.T, newReg func(t *testing.T) registry) {
	for _, tc := range registryCases {
		t.Run(tc.name, func(t *testing.T) {
			reg := newReg(t)
			reg.syncStores(storesSet(t, map[string]string{"sock": "socket", "room": "room", "glob": "global"}))
			conns := map[string]*conn{}
			for _, id := range []string{"a", "b", "c"} {
				conns[id] = &conn{id: id, data: map[string]any{}}
				reg.add(conns[id])
			}
			tc.run(t, reg, conns)
			if n := reg.failures(); n != 0 {
				t.Errorf("%d failed calls", n)
			}
		})
	}
}

func wantList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: nil, want a list (clients must get [])", what)
	}
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

var registryCases = []struct {
	name string
	run  func(t *testing.T, reg registry, c map[string]*conn)
}{
	{"join order and snapshot", func(t *testing.T, reg registry, c map[string]*conn) {
		before, added := reg.join(c["a"], "r")
		wantList(t, "a's before", before)
		if !added {
			t.Error("a not added")
		}
		before, _ = reg.join(c["b"], "r")
		wantList(t, "b's before", before, "a")
		before, _ = reg.join(c["c"], "r")
		wantList(t, "c's before", before, "a", "b")
		before, added = reg.join(c["a"], "r")
		if added {
			t.Error("rejoin reported added")
		}
		wantList(t, "rejoin's before", before, "a", "b", "c")
		wantList(t, "members", reg.members("r"), "a", "b", "c")
		if n := reg.roomSize("r"); n != 3 {
			t.Errorf("roomSize %d", n)
		}
		reg.join(c["a"], "r2")
		reg.join(c["a"], "r0")
		wantList(t, "a's rooms", reg.roomsOf("a"), "r", "r2", "r0")
	}},
	{"leave and empty rooms", func(t *testing.T, reg registry, c map[string]*conn) {
		reg.join(c["a"], "r")
		reg.join(c["b"], "r")
		reg.join(c["c"], "r")
		reg.storeSet("room", "r", "kept while r has members")
		wantList(t, "remaining", reg.leave(c["b"], "r"), "a", "c")
		wantList(t, "leave of a non-member", reg.leave(c["b"], "r"), "a", "c")
		if reg.inRoom("r", "b") || !reg.inRoom("r", "a") {
			t.Error("inRoom wrong after leave")
		}
		reg.leave(c["a"], "r")
		if reg.storeEntries("room")["r"] == nil {
			t.Error("room entry dropped while c is still in r")
		}
		wantList(t, "remaining", reg.leave(c["c"], "r"))
		if reg.roomSize("r") != 0 || reg.storeEntries("room")["r"] != nil {
			t.Error("emptied room or its room-scoped entry kept")
		}
		wantList(t, "members of an unknown room", reg.members("nowhere"))
	}},
	{"forget", func(t *testing.T, reg registry, c map[string]*conn) {
		reg.join(c["a"], "r1")
		reg.join(c["a"], "solo")
		reg.join(c["b"], "r1")
		reg.storeSet("sock", "a", 1)
		reg.storeSet("sock", "b", 2)
		reg.storeSet("glob", "a", 3)
		reg.storeSet("room", "solo", 4)
		reg.forget(c["a"])
		if reg.connected("a") || reg.socket("a") != nil || reg.count() != 2 {
			t.Error("a still registered")
		}
		wantList(t, "r1", reg.members("r1"), "b")
		wantList(t, "a's rooms", reg.roomsOf("a"))
		got := reg.storeEntries("sock")
		if got["a"] != nil || got["b"] != 2 {
			t.Errorf("socket store after forget: %v", got)
		}
		if reg.storeEntries("glob")["a"] != 3 {
			t.Error("global entry dropped")
		}
		if reg.storeEntries("room")["solo"] != nil {
			t.Error("entry of the emptied room kept")
		}
		n := 0
		reg.each(func(*conn) { n++ })
		if n != 2 {
			t.Errorf("each visited %d", n)
		}
	}},
	{"share a room", func(t *testing.T, reg registry, c map[string]*conn) {
		reg.join(c["a"], "r1")
		reg.join(c["b"], "r2")
		if reg.shareRoom(c["a"], "b") {
			t.Error("a and b share no room")
		}
		reg.join(c["b"], "r1")
		if !reg.shareRoom(c["a"], "b") || reg.shareRoom(c["a"], "c") {
			t.Error("shareRoom wrong")
		}
	}},
	{"socket data", func(t *testing.T, reg registry, c map[string]*conn) {
		reg.setData(c["a"], []string{"name", "role"}, []any{"alice", "host"})
		held := reg.socketData("a")
		reg.setData(c["a"], []string{"role"}, []any{nil})
		if got := reg.socketData("a"); got["name"] != "alice" || got["role"] != nil {
			t.Errorf("data %v", got)
		}
		if held["role"] != "host" {
			t.Error("data read earlier was changed in place")
		}
		if reg.socketData("nobody") != nil {
			t.Error("data of an unknown socket")
		}
	}},
	{"stores", func(t *testing.T, reg registry, c map[string]*conn) {
		reg.storeSetField("glob", "k", "mic", true)
		reg.storeSetField("glob", "k", "cam", false)
		v, _ := reg.storeGet("glob", "k")
		held := v.(map[string]any)
		reg.storeDeleteField("glob", "k", "mic")
		if got := reg.storeEntries("glob")["k"].(map[string]any); len(got) != 1 || got["cam"] != false {
			t.Errorf("entry %v", got)
		}
		if held["mic"] != true {
			t.Error("entry read earlier was changed in place")
		}
		reg.storeDeleteField("glob", "k", "cam")
		if _, ok := reg.storeEntries("glob")["k"]; ok {
			t.Error("emptied entry kept")
		}
		reg.storeSet("glob", "x", 1)
		reg.storeSet("glob", "x", nil)
		reg.storeSet("glob", "y", 2)
		reg.storeDelete("glob", "y")
		if len(reg.storeEntries("glob")) != 0 {
			t.Errorf("entries %v", reg.storeEntries("glob"))
		}
		copied := reg.storeEntries("glob")
		copied["z"] = 1
		if reg.storeEntries("glob")["z"] != nil {
			t.Error("storeEntries is not a copy")
		}
		if reg.storeEntries("nope") != nil {
			t.Error("entries of an unknown store")
		}
	}},
	{"stores across a reload", func(t *testing.T, reg registry, c map[string]*conn) {
		reg.storeSet("sock", "a", 1)
		reg.storeSet("glob", "g", 2)
		reg.storeSet("room", "r", 3)
		reg.syncStores(storesSet(t, map[string]string{"sock": "socket", "glob": "room", "new": "global"}))
		if reg.storeEntries("sock")["a"] != 1 {
			t.Error("a store keeping name and scope lost its entries")
		}
		if len(reg.storeEntries("glob")) != 0 {
			t.Error("a store whose scope changed kept its entries")
		}
		if reg.storeEntries("room") != nil || reg.storeEntries("new") == nil {
			t.Error("removed store kept or new store missing")
		}
	}},
	{"store get", func(t *testing.T, reg registry, c map[string]*conn) {
		reg.storeSet("glob", "k", map[string]any{"n": 1})
		if v, ok := reg.storeGet("glob", "k"); !ok || !reflect.DeepEqual(v, map[string]any{"n": 1}) {
			t.Errorf("storeGet: %v %v", v, ok)
		}
		if v, ok := reg.storeGet("glob", "nothing"); ok || v != nil {
			t.Errorf("storeGet of a missing key: %v %v", v, ok)
		}
		if v, ok := reg.storeGet("nope", "k"); ok || v != nil {
			t.Errorf("storeGet of an unknown store: %v %v", v, ok)
		}
		reg.storeDelete("glob", "k")
		if _, ok := reg.storeGet("glob", "k"); ok {
			t.Error("deleted entry still read")
		}
	}},
	{"store values keep their shape", func(t *testing.T, reg registry, c map[string]*conn) {
		// Values as rules make them (decoded JSON, ints): each must read
		// back equal, fields written one by one must not disturb the rest.
		tricky := map[string]any{
			"empty":  []any{},
			"obj":    map[string]any{},
			"nested": map[string]any{"a": []any{1, "x", nil, map[string]any{"}": "]"}}},
			"quote":  `q"}{,:[\`,
			"text":   "é \u2028 <>& \n",
			"big":    1 << 60,
			"neg":    -7,
			"float":  1.5,
			"yes":    true,
			"null":   nil,
		}
		reg.storeSet("glob", "e", tricky)
		reg.storeSetField("glob", "e", "added", []any{})
		reg.storeSetField("glob", "e", "quote", "replaced")
		reg.storeSetField("glob", "e", `we"ird<>`, 2)
		reg.storeDeleteField("glob", "e", "yes")
		want := maps.Clone(tricky)
		want["added"], want["quote"], want[`we"ird<>`] = []any{}, "replaced", 2
		delete(want, "yes")
		if got, _ := reg.storeGet("glob", "e"); !reflect.DeepEqual(got, want) {
			t.Errorf("entry\n got %#v\nwant %#v", got, want)
		}
		reg.storeDeleteField("glob", "e", `we"ird<>`)
		if got, _ := reg.storeGet("glob", "e"); got.(map[string]any)[`we"ird<>`] != nil {
			t.Error("field with an escaped name not deleted")
		}
		// A field written over an entry that is not an object replaces it;
		// a field deleted from one leaves it.
		reg.storeSet("glob", "s", "scalar")
		reg.storeDeleteField("glob", "s", "f")
		if got, _ := reg.storeGet("glob", "s"); got != "scalar" {
			t.Errorf("delete of a field of a scalar: %v", got)
		}
		reg.storeSetField("glob", "s", "f", 1)
		if got, _ := reg.storeGet("glob", "s"); !reflect.DeepEqual(got, map[string]any{"f": 1}) {
			t.Errorf("field set over a scalar: %v", got)
		}
		reg.storeSet("glob", "t", "scalar")
		reg.storeSetField("glob", "t", "f", nil)
		if _, ok := reg.storeGet("glob", "t"); ok {
			t.Error("a nil field over a scalar leaves no entry, as in memory")
		}
	}},
	{"reads see the event's own writes", func(t *testing.T, reg registry, c map[string]*conn) {
		// Expressions read entries through storeGet and whole stores
		// through storeEntries (host), each time from the registry.
		reg.join(c["a"], "r")
		reg.storeSet("room", "r", 1)
		reg.storeSet("glob", "k", 2)
		reg.storeSetField("glob", "f", "x", 3)
		reg.storeSet("sock", "a", 4)
		if v, _ := reg.storeGet("glob", "k"); v != 2 {
			t.Errorf("entry after a write: %v", v)
		}
		if g := reg.storeEntries("glob"); g["k"] != 2 || !reflect.DeepEqual(g["f"], map[string]any{"x": 3}) {
			t.Errorf("store after writes: %v", g)
		}
		reg.leave(c["a"], "r")
		if _, ok := reg.storeGet("room", "r"); ok {
			t.Error("the entry of a room emptied since is still read")
		}
		reg.forget(c["a"])
		if _, ok := reg.storeGet("sock", "a"); ok {
			t.Error("the entry of a socket forgotten since is still read")
		}
	}},
}

// A socket whose disconnect cleanup has begun on one node (leaving) is not
// among the members a join on another node sees, and forget takes it out
// of the leaving set again. Found by TestExampleRaiseHandAndLeave on two
// nodes: a join between a leaver's rules and its forget backfilled the
// newcomer with a peer whose leave it never heard.
func TestRedisJoinSkipsLeaving(t *testing.T) {
	rdb := newTestRedisClient(t, redistest.Start(t))
	n1, n2 := newTestRedisRegistry(t, rdb, "n1"), newTestRedisRegistry(t, rdb, "n2")
	a, b := &conn{id: "a", data: map[string]any{}}, &conn{id: "b", data: map[string]any{}}
	x, y := &conn{id: "x", data: map[string]any{}}, &conn{id: "y", data: map[string]any{}}
	n1.add(a)
	n1.add(b)
	n2.add(x)
	n2.add(y)
	n1.join(a, "r")
	n1.join(b, "r")
	n1.leaving(a)
	before, _ := n2.join(x, "r")
	wantList(t, "x's before while a is leaving", before, "b")
	n1.forget(a)
	before, _ = n2.join(y, "r")
	wantList(t, "y's before after a's forget", before, "b", "x")
	if n, err := rdb.SCard(t.Context(), n1.p+"leaving").Result(); err != nil || n != 0 {
		t.Fatalf("leaving set after forget: %d, %v", n, err)
	}
	for _, reg := range []*redisRegistry{n1, n2} {
		if f := reg.failures(); f != 0 {
			t.Errorf("%d failed calls", f)
		}
	}
}
