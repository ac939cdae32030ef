package rules

import (
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"
)

// exprsOf finds every compiled expression reachable from v.
func exprsOf(v reflect.Value, seen map[uintptr]bool, out *[]*Expr) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || seen[v.Pointer()] {
			return
		}
		seen[v.Pointer()] = true
		if e, ok := v.Interface().(*Expr); ok {
			*out = append(*out, e)
			return
		}
		exprsOf(v.Elem(), seen, out)
	case reflect.Interface:
		if !v.IsNil() {
			exprsOf(v.Elem(), seen, out)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() || v.Type().Field(i).Name == "byEvent" {
				exprsOf(v.Field(i), seen, out)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			exprsOf(v.Index(i), seen, out)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			exprsOf(v.MapIndex(k), seen, out)
		}
	}
}

// fixedHost answers like a small live server.
type fixedHost struct{}

func (fixedHost) Members(room string) []string {
	if room == "r1" {
		return []string{"a", "b"}
	}
	return nil
}
func (fixedHost) RoomSize(room string) int { return len(fixedHost{}.Members(room)) }
func (fixedHost) SocketData(id string) map[string]any {
	if id == "a" {
		return map[string]any{"name": "Alice"}
	}
	return nil
}
func (fixedHost) RoomsOf(id string) []string { return []string{"r1"} }
func (fixedHost) Connected(id string) bool   { return id == "a" }
func (fixedHost) Now() time.Time             { return time.UnixMilli(1700000000000) }

// mapStores holds stores in maps, as the router's in-memory registry does.
type mapStores map[string]map[string]any

func (m mapStores) StoreGet(store, key string) (any, bool) {
	v, ok := m[store][key]
	return v, ok
}

func (m mapStores) StoreEntries(store string) map[string]any {
	entries, ok := m[store]
	if !ok {
		return nil
	}
	return maps.Clone(entries)
}

// fastEnvs are the situations every expression is run in: payloads of
// every shape a client can send, bound names of every kind, stores with
// and without entries.
func fastEnvs() []*Env {
	payloads := []any{
		nil, "r1", 42.0, true, []any{"r1", 1.0},
		map[string]any{},
		map[string]any{"roomId": "r1", "name": "Alice", "mic": true, "cam": false, "text": "hi", "password": "pw", "hand": true},
		map[string]any{"roomId": "", "name": 7.0, "mic": "yes", "cam": nil, "text": strings.Repeat("x", 1001)},
		map[string]any{"roomId": 12.0, "text": []any{"a"}, "password": map[string]any{}},
		map[string]any{"roomId": "r2", "text": "", "name": nil, "user": "u1"},
		map[string]any{"roomId": math.Inf(1), "text": "t"},
	}
	socks := []*SocketInfo{
		{ID: "a", Data: map[string]any{"name": "Alice"}, Rooms: []string{"r1"}, Auth: map[string]any{"token": "t"}, Query: map[string]any{}, Claims: map[string]any{"rooms": []any{"r1"}, "name": "Alice"}},
		{ID: "z", Data: map[string]any{}, Rooms: []string{}, Auth: map[string]any{}, Query: map[string]any{"tag": "x"}, Claims: map[string]any{}},
	}
	stores := []Stores{
		mapStores{"media": {}, "passwords": {}, "hands": {}},
		mapStores{"media": {"a": map[string]any{"mic": true, "cam": true}, "": "empty key"}, "passwords": {"r1": "x"}, "hands": {"r1": map[string]any{"a": true}}},
		nil, // the handshake's: no stores
	}
	vars := []map[string]any{
		nil,
		{"peer": "a", "existing": []string{"a", "b"}, "room": "r1", "at": 1700000000000, "member": "a", "remaining": []string{}, "user": "u"},
		{"peer": "nobody", "existing": []string{}, "room": "gone", "at": 0},
	}
	var out []*Env
	for _, d := range payloads {
		for _, s := range socks {
			for _, st := range stores {
				for _, v := range vars {
					out = append(out, &Env{Data: d, Args: []any{d}, Event: "e", Socket: s, Stores: st, Vars: v,
						Environ: map[string]string{"TURN_SECRET": "s", "TURN_HOST": "h"}})
				}
			}
		}
	}
	return out
}

// TestFastAgreesWithVM: on every expression of the shipped configs and a
// table of edge cases, the closure tree and expr's VM give the same value,
// or both fail.
func TestFastAgreesWithVM(t *testing.T) {
	files, _ := filepath.Glob("../examples/*/rtcio.yaml")
	files = append(files, "../rtcio.yaml", "testdata/fast.yaml")
	envs := fastEnvs()
	var all, fast int
	for _, f := range files {
		set, err := Load(f, Options{Host: fixedHost{}, Environ: map[string]string{"JWT_SECRET": "s"}})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var exprs []*Expr
		exprsOf(reflect.ValueOf(set), map[uintptr]bool{}, &exprs)
		for _, e := range exprs {
			all++
			if e.fast == nil {
				t.Logf("%s:%d:%d: on the VM: %s", f, e.Pos.Line, e.Pos.Col, e.Src)
				continue
			}
			fast++
			var machine vm.VM
			for i, env := range envs {
				want, werr := machine.Run(e.program, env)
				got, gerr := e.runFast(env)
				if (werr != nil) != (gerr != nil) || (werr == nil && !reflect.DeepEqual(want, got)) {
					t.Errorf("%s:%d:%d: %s in env %d (data %#v, vars %v):\n  vm   %#v, %v\n  fast %#v, %v",
						f, e.Pos.Line, e.Pos.Col, e.Src, i, env.Data, env.Vars, want, werr, got, gerr)
					break
				}
			}
		}
	}
	t.Logf("%d of %d expressions run as closures", fast, all)
	if fast*10 < all*9 {
		t.Errorf("only %d of %d expressions run as closures; the shipped rules should nearly all be", fast, all)
	}
}

// BenchmarkExpr compares the two ways of running one typical condition.
func BenchmarkExpr(b *testing.B) {
	set, err := Parse("b.yaml", []byte(`rules:
  - event: e
    validate: type(data) == "map" && type(data.roomId) == "string" && data.roomId != "" && data.roomId in socket.rooms
    do: [{ack: 1}]
`), Options{Environ: map[string]string{}})
	if err != nil {
		b.Fatal(err)
	}
	e := set.Rules[0].Validate[0].Cond
	env := &Env{Data: map[string]any{"roomId": "r1"}, Socket: &SocketInfo{ID: "a", Rooms: []string{"r1"}}}
	for _, mode := range []string{"vm", "closures"} {
		b.Run(mode, func(b *testing.B) {
			var machine vm.VM
			b.ReportAllocs()
			for b.Loop() {
				var v any
				if mode == "vm" {
					v, err = machine.Run(e.program, env)
				} else {
					v, err = (&Evaluator{}).Eval(e, env)
				}
				if v != true || err != nil {
					b.Fatal(fmt.Sprint(v, err))
				}
			}
		})
	}
}
