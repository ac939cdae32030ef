package rules

import (
	"reflect"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// mapEnv is the environment expressions had when stores was a map of every
// store's entries: what store reads must still mean.
type mapEnv struct {
	Data   any            `expr:"data"`
	Socket *SocketInfo    `expr:"socket"`
	Stores map[string]any `expr:"stores"`
}

// storeExprs read stores in every way the syntax allows.
var storeExprs = []string{
	`stores.media[socket.id]`,
	`stores.media[socket.id]?.mic`,
	`stores.media[socket.id].mic`,
	`stores.media.a`,
	`stores.media?.a`,
	`stores["media"]["a"]`,
	`stores?.media[socket.id]`,
	`stores.hands[data.roomId]?.[socket.id] != nil`,
	`stores.hands[data.roomId]?.[socket.id]`,
	`stores.passwords[data.roomId] == nil || data.password == stores.passwords[data.roomId]`,
	`stores.media[data.roomId]`,
	`stores.media[nil]`,
	`stores.media[1]`,
	`stores.media[data]`,
	`data.roomId in stores.passwords`,
	`socket.id in stores.media`,
	`socket.id not in stores.media`,
	`nil in stores.media`,
	`1 in stores.media`,
	`stores.media`,
	`stores.media == nil`,
	`len(stores.media)`,
	`keys(stores.media)`,
	`values(stores.passwords)`,
	`type(stores.hands)`,
	`stores[data.roomId]`,
	`stores[data.roomId] == nil`,
	`stores[data.roomId]?.a`,
	`stores[socket.data.store]`,
	`stores[socket.data.store][socket.id]`,
	`stores`,
	`len(stores)`,
	`"media" in stores`,
	`keys(stores)`,
	`let m = stores.media; m[socket.id]?.cam`,
	`filter(keys(stores.media), {stores.media[#] != nil})`,
	`any(["a", "b"], {# in stores.media})`,
	`map(["a", "zz"], {stores.media[#]})`,
	`stores.media[socket.id] ?? "none"`,
}

// TestStoreReadsAsMaps: every way of reading stores gives the value it
// gave when expressions were handed a map of every store's entries (or
// both fail), now that they read one entry or one store at a time, on
// the VM and on closures.
func TestStoreReadsAsMaps(t *testing.T) {
	decl := "stores:\n  media: { scope: socket }\n  hands: { scope: room }\n  passwords: { scope: room }\nrules:\n  - event: e\n    do:\n"
	for _, src := range storeExprs {
		decl += "      - ack: |-\n          " + src + "\n" // a block: quoted scalars are strings
	}
	set, err := Parse("stores.yaml", []byte(decl), Options{Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	var compiled []*Expr
	exprsOf(reflect.ValueOf(set), map[uintptr]bool{}, &compiled)
	if len(compiled) != len(storeExprs) {
		t.Fatalf("%d expressions compiled, want %d", len(compiled), len(storeExprs))
	}
	byText := map[string]*Expr{}
	for _, e := range compiled {
		byText[e.Src] = e
	}
	for _, src := range storeExprs {
		old, err := expr.Compile(src, expr.Env(mapEnv{}))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		e := byText[src]
		for _, env := range fastEnvs() {
			st, ok := env.Stores.(mapStores)
			if !ok {
				continue
			}
			if env.Socket.Data["store"] == nil {
				env.Socket.Data = map[string]any{"store": "hands"}
			}
			asMaps := map[string]any{}
			for name, m := range st {
				asMaps[name] = m
			}
			want, werr := expr.Run(old, mapEnv{Data: env.Data, Socket: env.Socket, Stores: asMaps})
			var machine vm.VM
			got, gerr := machine.Run(e.program, env)
			check := func(how string, got any, gerr error) {
				t.Helper()
				if (werr != nil) != (gerr != nil) || (werr == nil && !sameValue(want, got)) {
					t.Errorf("%s (%s), data %#v, stores %v:\n  as maps %#v, %v\n  now     %#v, %v", src, how, env.Data, st, want, werr, got, gerr)
				}
			}
			check("vm", got, gerr)
			if e.fast != nil {
				got, gerr = e.runFast(env)
				check("closures", got, gerr)
			}
		}
	}
}

// TestStoreReadErrors: store reads that fail to load still do, at their
// position.
func TestStoreReadErrors(t *testing.T) {
	for src, want := range map[string]string{
		`stores.medai[socket.id]`: `s.yaml:7:21: rule "e": ack: unknown store "medai" (did you mean "media"?)`,
		`x in stores.nope`:        `s.yaml:7:26: rule "e": ack: unknown store "nope"`,
		`keys(stores?.hnads)`:     `s.yaml:7:27: rule "e": ack: unknown store "hnads" (did you mean "hands"?)`,
		`stores[1]`:               `s.yaml:7:21: rule "e": ack: the name of a store is a string, got int`,
	} {
		doc := "stores:\n  media: { scope: socket }\n  hands: { scope: room }\nrules:\n  - event: e\n    do:\n      - ack: " + src + "\n"
		_, err := Parse("s.yaml", []byte(doc), Options{Environ: map[string]string{}})
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v, want %s...", src, err, want)
		}
	}
}

// sameValue compares results, lists of map keys in any order.
func sameValue(a, b any) bool {
	la, ok1 := a.([]any)
	lb, ok2 := b.([]any)
	if !ok1 || !ok2 || len(la) != len(lb) {
		return reflect.DeepEqual(a, b)
	}
	for _, x := range la {
		found := false
		for _, y := range lb {
			if reflect.DeepEqual(x, y) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
