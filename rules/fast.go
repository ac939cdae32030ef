package rules

import (
	"cmp"
	"errors"
	"fmt"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
)

// Most rule expressions are small: a field of the payload, a comparison, a
// type check, a store lookup. The expr VM runs them correctly but pays for
// generality on every event: an argument buffer per run that calls a
// function, reflective field access, a stack. For expressions made only of
// the operations below, the compiler also builds a tree of Go closures that
// computes the same value with expr's own runtime helpers (Equal, In, Less,
// type, len), so the semantics are expr's; anything else runs on the VM.
// fast_test.go checks that both agree on every expression of the shipped
// configs and on a table of edge cases.

// evalFn is one compiled closure: the value of a node in env.
type evalFn func(env *Env) (any, error)

// Evaluator runs compiled expressions. It keeps the expression VM that
// expressions without a closure tree run on, reused from run to run so an
// event costs no VM allocation; like that VM it runs one expression at a
// time, so each goroutine that evaluates concurrently needs its own (the
// router keeps one under its state lock and makes one per handshake).
// The zero value is ready to use.
type Evaluator struct{ vm vm.VM }

// Eval runs e in env: on its closure tree when it has one, otherwise on
// the evaluator's VM.
func (ev *Evaluator) Eval(e *Expr, env *Env) (any, error) {
	if e.fast != nil {
		return e.runFast(env)
	}
	return ev.vm.Run(e.program, env)
}

// runFast turns a panic of expr's helpers (In on a non-container, len of a
// number) into an error, as the VM does.
func (e *Expr) runFast(env *Env) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return e.fast(env)
}

var errNotBool = errors.New("invalid operation: operand is not a bool")

// fastCompiler builds closures; funcs are the host functions by name.
type fastCompiler struct {
	funcs map[string]func(...any) (any, error)
}

// compile returns the closure of n, or false when n uses anything outside
// the supported subset.
func (fc *fastCompiler) compile(n ast.Node) (evalFn, bool) {
	switch n := n.(type) {
	case *ast.NilNode:
		return func(*Env) (any, error) { return nil, nil }, true
	case *ast.BoolNode:
		return constant(n.Value), true
	case *ast.IntegerNode:
		return constant(n.Value), true
	case *ast.FloatNode:
		return constant(n.Value), true
	case *ast.StringNode:
		return constant(n.Value), true
	case *ast.ConstantNode:
		return constant(n.Value), true
	case *ast.IdentifierNode:
		return identifier(n.Value)
	case *ast.MemberNode:
		return fc.member(n)
	case *ast.CallNode:
		return fc.call(n)
	case *ast.BuiltinNode:
		return fc.builtin(n)
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil, false
		}
		x, ok := fc.compile(n.Node)
		if !ok {
			return nil, false
		}
		return then(x, func(v any) (any, error) {
			b, ok := v.(bool)
			if !ok {
				return nil, errNotBool
			}
			return !b, nil
		}), true
	case *ast.BinaryNode:
		return fc.binary(n)
	case *ast.ChainNode:
		// a?.b.c: a nil before ?. makes the whole chain nil.
		x, ok := fc.compile(n.Node)
		if !ok {
			return nil, false
		}
		return func(env *Env) (any, error) {
			v, err := x(env)
			if err == errChainNil {
				return nil, nil
			}
			return v, err
		}, true
	}
	return nil, false
}

// errChainNil ends a ?. chain whose base is nil; the ChainNode around it
// turns it into nil.
var errChainNil = errors.New("nil in a ?. chain")

// asBoolFn gives a condition expr's AsBool semantics: nil is false, a
// bool is itself, anything else is an error.
func asBoolFn(x evalFn) evalFn {
	return then(x, func(v any) (any, error) {
		switch v.(type) {
		case nil:
			return false, nil
		case bool:
			return v, nil
		}
		return nil, errNotBool
	})
}

// then runs x and hands its value to f; an error of x is the result.
func then(x evalFn, f func(any) (any, error)) evalFn {
	return func(env *Env) (any, error) {
		v, err := x(env)
		if err != nil {
			return nil, err
		}
		return f(v)
	}
}

// both runs l, then r, and hands their values to f.
func both(l, r evalFn, f func(a, b any) (any, error)) evalFn {
	return func(env *Env) (any, error) {
		a, err := l(env)
		if err != nil {
			return nil, err
		}
		b, err := r(env)
		if err != nil {
			return nil, err
		}
		return f(a, b)
	}
}

func constant(v any) evalFn {
	return func(*Env) (any, error) { return v, nil }
}

// identifier reads a top-level name. args and event are left to the VM:
// boxing them would allocate on every read. stores appears only as the
// first argument of the store reads the patcher wrote, which call reads
// env.Stores directly (storeRead).
func identifier(name string) (evalFn, bool) {
	switch name {
	case "data":
		return func(env *Env) (any, error) { return env.Data, nil }, true
	case "socket":
		return func(env *Env) (any, error) { return env.Socket, nil }, true
	case "vars":
		return func(env *Env) (any, error) { return env.Vars, nil }, true
	case "env":
		return func(env *Env) (any, error) { return env.Environ, nil }, true
	}
	return nil, false
}

// member handles socket.FIELD; every other member access was rewritten
// into a fetch call by the patcher, or is a ?. chain left to the VM.
func (fc *fastCompiler) member(n *ast.MemberNode) (evalFn, bool) {
	if n.Optional && !n.Method {
		from, ok := fc.compile(n.Node)
		if !ok {
			return nil, false
		}
		key, ok := fc.compile(n.Property)
		if !ok {
			return nil, false
		}
		// The base first: a nil one ends the chain before the key runs.
		return func(env *Env) (any, error) {
			f, err := from(env)
			if err != nil || f == nil {
				return nil, cmp.Or(err, errChainNil)
			}
			k, err := key(env)
			if err != nil {
				return nil, err
			}
			return fetch(f, k)
		}, true
	}
	id, ok := n.Node.(*ast.IdentifierNode)
	prop, ok2 := n.Property.(*ast.StringNode)
	if !ok || !ok2 || id.Value != "socket" || n.Optional || n.Method {
		return nil, false
	}
	switch prop.Value {
	case "id":
		return func(env *Env) (any, error) { return env.Socket.ID, nil }, true
	case "data":
		return func(env *Env) (any, error) { return env.Socket.Data, nil }, true
	case "rooms":
		return func(env *Env) (any, error) { return env.Socket.Rooms, nil }, true
	case "auth":
		return func(env *Env) (any, error) { return env.Socket.Auth, nil }, true
	case "query":
		return func(env *Env) (any, error) { return env.Socket.Query, nil }, true
	case "claims":
		return func(env *Env) (any, error) { return env.Socket.Claims, nil }, true
	}
	return nil, false
}

func (fc *fastCompiler) args(nodes []ast.Node) ([]evalFn, bool) {
	out := make([]evalFn, len(nodes))
	for i, a := range nodes {
		f, ok := fc.compile(a)
		if !ok {
			return nil, false
		}
		out[i] = f
	}
	return out, true
}

func (fc *fastCompiler) call(n *ast.CallNode) (evalFn, bool) {
	callee, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return nil, false
	}
	if fn, ok, isStore := fc.storeRead(callee.Value, n); isStore {
		return fn, ok
	}
	args, ok := fc.args(n.Arguments)
	if !ok {
		return nil, false
	}
	if callee.Value == fetchFunc && len(args) == 2 {
		return both(args[0], args[1], fetch), true
	}
	fn := fc.funcs[callee.Value]
	if fn == nil {
		return nil, false
	}
	return func(env *Env) (any, error) {
		vals := make([]any, len(args))
		for i, a := range args {
			v, err := a(env)
			if err != nil {
				return nil, err
			}
			vals[i] = v
		}
		return fn(vals...)
	}, true
}

// storeRead compiles the store reads the patcher wrote (stores.go); they
// read env.Stores rather than an argument. isStore is false for any other
// call.
func (fc *fastCompiler) storeRead(callee string, n *ast.CallNode) (fn evalFn, ok, isStore bool) {
	name, constant, isStore := storeCallOf(n, callee)
	if !isStore {
		return nil, false, false
	}
	switch callee {
	case storeGetFunc, storeHasFunc:
		if !constant || len(n.Arguments) != 3 {
			return nil, false, true
		}
		key, ok := fc.compile(n.Arguments[2])
		if !ok {
			return nil, false, true
		}
		if callee == storeHasFunc {
			return func(env *Env) (any, error) {
				k, err := key(env)
				if err != nil {
					return nil, err
				}
				return storeHas(env.Stores, name, k)
			}, true, true
		}
		return func(env *Env) (any, error) {
			k, err := key(env)
			if err != nil {
				return nil, err
			}
			return storeGet(env.Stores, name, k)
		}, true, true
	case storeFunc:
		if len(n.Arguments) != 2 {
			return nil, false, true
		}
		x, ok := fc.compile(n.Arguments[1])
		if !ok {
			return nil, false, true
		}
		return func(env *Env) (any, error) {
			v, err := x(env)
			if err != nil {
				return nil, err
			}
			return storeEntries(env.Stores, v)
		}, true, true
	case storesFunc:
		all := fc.funcs[storesFunc]
		if all == nil || len(n.Arguments) != 1 {
			return nil, false, true
		}
		return func(env *Env) (any, error) { return all(env.Stores) }, true, true
	}
	return nil, false, false
}

func (fc *fastCompiler) builtin(n *ast.BuiltinNode) (evalFn, bool) {
	if len(n.Arguments) != 1 || n.Map != nil {
		return nil, false
	}
	var op func(any) any
	switch n.Name {
	case "type":
		op = builtin.Type
	case "len":
		op = builtin.Len
	default:
		return nil, false
	}
	x, ok := fc.compile(n.Arguments[0])
	if !ok {
		return nil, false
	}
	return then(x, func(v any) (any, error) { return op(v), nil }), true
}

func (fc *fastCompiler) binary(n *ast.BinaryNode) (evalFn, bool) {
	l, ok := fc.compile(n.Left)
	if !ok {
		return nil, false
	}
	r, ok := fc.compile(n.Right)
	if !ok {
		return nil, false
	}
	switch n.Operator {
	case "&&", "and":
		return logic(l, r, false), true
	case "||", "or":
		return logic(l, r, true), true
	case "??":
		return func(env *Env) (any, error) {
			v, err := l(env)
			if err != nil || v != nil {
				return v, err
			}
			return r(env)
		}, true
	}
	var op func(a, b any) bool
	switch n.Operator {
	case "==":
		op = runtime.Equal
	case "!=":
		op = func(a, b any) bool { return !runtime.Equal(a, b) }
	case "in":
		op = runtime.In
	case "<":
		op = runtime.Less
	case ">":
		op = runtime.More
	case "<=":
		op = runtime.LessOrEqual
	case ">=":
		op = runtime.MoreOrEqual
	default:
		return nil, false
	}
	return both(l, r, func(a, b any) (any, error) { return op(a, b), nil }), true
}

// logic is && (or false) and || (or true), short-circuiting as expr does:
// the right side runs only when the left does not decide.
func logic(l, r evalFn, or bool) evalFn {
	return func(env *Env) (any, error) {
		a, err := l(env)
		if err != nil {
			return nil, err
		}
		ab, ok := a.(bool)
		if !ok {
			return nil, errNotBool
		}
		if ab == or {
			return ab, nil
		}
		b, err := r(env)
		if err != nil {
			return nil, err
		}
		bb, ok := b.(bool)
		if !ok {
			return nil, errNotBool
		}
		return bb, nil
	}
}
