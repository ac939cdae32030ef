package rules

import (
	"fmt"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
)

// Stores reads the declared stores for expressions, one entry or one store
// at a time. Expressions keep writing stores.NAME[key] and stores.NAME; the
// compiler rewrites those into the calls below (patcher, compile.go), so an
// event reads only the entries its expressions touch. Over a registry in
// Redis that is one small read per entry, where handing every event a map
// of all the stores meant reading them all, every time.
//
// The router implements it over its registry; an implementation answers
// from the live state, so a write earlier in the event is seen.
type Stores interface {
	// StoreGet returns store[key]; ok is false if there is no such entry
	// (or no such store).
	StoreGet(store, key string) (v any, ok bool)
	// StoreEntries returns the entries of one store, which the caller
	// keeps and does not change; nil if there is no such store.
	StoreEntries(store string) map[string]any
}

// The functions the compiler puts in place of store reads; not meant to be
// written by hand. Each takes the environment's stores first.
const (
	storeGetFunc = "$storeGet" // stores.NAME[key], stores.NAME.key
	storeHasFunc = "$storeHas" // key in stores.NAME
	storeFunc    = "$store"    // stores.NAME used whole; stores[name]
	storesFunc   = "$stores"   // stores alone (keys(stores)): every store
)

// storeFunctions binds the store reads, as expr options and by name for
// the closure compiler. set is the Set being loaded: `stores` alone lists
// its declared stores, read when the expression runs.
func storeFunctions(set *Set) ([]expr.Option, map[string]func(...any) (any, error)) {
	funcs := map[string]func(...any) (any, error){
		storeGetFunc: func(p ...any) (any, error) { return storeGet(readerOf(p[0]), nameOf(p[1]), p[2]) },
		storeHasFunc: func(p ...any) (any, error) { return storeHas(readerOf(p[0]), nameOf(p[1]), p[2]) },
		storeFunc:    func(p ...any) (any, error) { return storeEntries(readerOf(p[0]), p[1]) },
		storesFunc:   func(p ...any) (any, error) { return allStores(readerOf(p[0]), set), nil },
	}
	opts := []expr.Option{
		expr.Function(storeGetFunc, funcs[storeGetFunc], new(func(any, string, any) any)),
		expr.Function(storeHasFunc, funcs[storeHasFunc], new(func(any, string, any) bool)),
		expr.Function(storeFunc, funcs[storeFunc], new(func(any, string) any)), // stores[1] fails to load
		expr.Function(storesFunc, funcs[storesFunc], new(func(any) map[string]any)),
	}
	return opts, funcs
}

// readerOf is the environment's stores as a function argument; nil reads
// as no stores at all.
func readerOf(v any) Stores {
	st, _ := v.(Stores)
	return st
}

// nameOf is a store's name, a constant string the patcher wrote.
func nameOf(v any) string {
	s, _ := v.(string)
	return s
}

// storeKey is a key of a store as a map read takes it: a string, or nil
// for the empty key; anything else is an error, as indexing a
// map[string]any with it is in expr.
func storeKey(store string, key any) (string, error) {
	switch k := key.(type) {
	case string:
		return k, nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("cannot fetch %v from store %q: its keys are strings, got %s", key, store, typeName(key))
}

// storeGet is stores.NAME[key]: the entry, nil if there is none.
func storeGet(st Stores, store string, key any) (any, error) {
	k, err := storeKey(store, key)
	if err != nil || st == nil {
		return nil, err
	}
	v, _ := st.StoreGet(store, k)
	return v, nil
}

// storeHas is `key in stores.NAME`.
func storeHas(st Stores, store string, key any) (bool, error) {
	k, err := storeKey(store, key)
	if err != nil || st == nil {
		return false, err
	}
	_, ok := st.StoreGet(store, k)
	return ok, nil
}

// storeEntries is stores.NAME, or stores[name] for a computed name: the
// store's entries, nil for a name that is not a store.
func storeEntries(st Stores, name any) (any, error) {
	s, err := storeKey("stores", name)
	if err != nil || st == nil {
		return nil, err
	}
	if m := st.StoreEntries(s); m != nil {
		return m, nil
	}
	return nil, nil // an untyped nil: `stores[x] == nil` holds
}

// allStores is `stores` alone: every declared store's entries. The only
// read of every store, paid only by an expression that asks for it.
func allStores(st Stores, set *Set) map[string]any {
	out := make(map[string]any, len(set.Stores))
	for _, s := range set.Stores {
		var m map[string]any
		if st != nil {
			m = st.StoreEntries(s.Name)
		}
		if m == nil {
			m = map[string]any{}
		}
		out[s.Name] = m
	}
	return out
}

// storesIdent is the environment's stores as the rewritten calls take them.
func storesIdent() ast.Node { return &ast.IdentifierNode{Value: "stores"} }

// storeCall builds one of the store functions' calls.
func storeCall(fn string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: append([]ast.Node{storesIdent()}, args...)}
}

// storeCallOf reports whether n is a call to fn that the patcher built,
// and with fn one of $storeGet, $storeHas, $store, the store's name when
// it is a constant.
func storeCallOf(n ast.Node, fn string) (name string, constant, ok bool) {
	c, isCall := n.(*ast.CallNode)
	if !isCall || len(c.Arguments) == 0 {
		return "", false, false
	}
	if id, isID := c.Callee.(*ast.IdentifierNode); !isID || id.Value != fn {
		return "", false, false
	}
	if id, isID := c.Arguments[0].(*ast.IdentifierNode); !isID || id.Value != "stores" {
		return "", false, false
	}
	if len(c.Arguments) > 1 {
		if s, isStr := c.Arguments[1].(*ast.StringNode); isStr {
			return s.Value, true, true
		}
	}
	return "", false, true
}
