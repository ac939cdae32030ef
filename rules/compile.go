package rules

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"gopkg.in/yaml.v3"
)

func (l *loader) compileBool(n *yaml.Node, what string, sc scope) *Expr {
	return l.compile(resolve(n), what, sc, true)
}

// compile turns one YAML scalar into a program, moving any error from the
// expression's own coordinates onto the file's.
func (l *loader) compile(n *yaml.Node, what string, sc scope, asBool bool) *Expr {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		l.errf(n, "%s must be an expression, got %s", what, kindName(n))
		return nil
	}
	src := n.Value
	if n.Tag == "!!null" {
		src = "nil"
	}
	if strings.TrimSpace(src) == "" {
		l.errf(n, "%s: the expression is empty", what)
		return nil
	}
	p := &patcher{locals: sc, stores: l.set.stores}
	opts := append(slices.Clip(l.exprOpts), expr.Patch(p))
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	for _, pe := range p.errs {
		l.errAt(l.exprPos(n, src, pe.offset), "%s: %s", what, pe.msg)
	}
	if len(p.errs) > 0 {
		return nil
	}
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) && fe.Line > 0 {
			l.errAt(l.exprLinePos(n, fe.Line, fe.Column), "%s: %s", what, l.friendly(fe.Message, sc))
		} else {
			l.errf(n, "%s: %s", what, l.friendly(firstLine(err.Error()), sc))
		}
		return nil
	}
	e := &Expr{Src: src, Pos: posOf(n), program: prog}
	if fn, ok := l.fast.compile(prog.Node()); ok {
		if asBool {
			fn = asBoolFn(fn)
		}
		e.fast = fn
	}
	return e
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

var (
	unknownNameRe = regexp.MustCompile(`^unknown name (\S+)$`)
	noFieldRe     = regexp.MustCompile(`type \*?rules\.(\w+) has no field (\w+)`)
	goTypeRe      = regexp.MustCompile(`\*?rules\.(\w+)`)
	// stores[1]: the name of a store must be a string (patcher, $store).
	storeNameRe = regexp.MustCompile(`^cannot use (\S+) as argument \(type string\) to call \` + storeFunc + `\b`)
)

// friendly rewrites expr's messages so they speak of the file's names, not
// Go types, and adds a did-you-mean hint.
func (l *loader) friendly(msg string, sc scope) string {
	if m := unknownNameRe.FindStringSubmatch(msg); m != nil {
		known := append(slices.Clone(envNames), sc...)
		for _, f := range Functions {
			known = append(known, f.Name)
		}
		return fmt.Sprintf("unknown name %q%s", m[1], suggest(m[1], known))
	}
	if m := storeNameRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("the name of a store is a string, got %s", m[1])
	}
	if m := noFieldRe.FindStringSubmatch(msg); m != nil {
		switch m[1] {
		case "SocketInfo":
			return fmt.Sprintf("socket has no field %q%s", m[2], suggest(m[2], []string{"id", "data", "rooms", "auth", "query", "claims"}))
		default:
			return fmt.Sprintf("unknown name %q", m[2])
		}
	}
	return goTypeRe.ReplaceAllStringFunc(msg, func(s string) string {
		switch strings.TrimPrefix(strings.TrimPrefix(s, "*"), "rules.") {
		case "SocketInfo":
			return "socket"
		default:
			return "value"
		}
	})
}

// exprLinePos maps a (1-based line, 0-based column) inside the expression to
// the file. Plain scalars start at the node; quoted ones one column later;
// block scalars (| and >) start on the next line at the block's indentation.
func (l *loader) exprLinePos(n *yaml.Node, line, col int) Pos {
	switch {
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		// The block's indentation is that of its first line; deeper
		// indentation on later lines is part of the expression.
		return Pos{Line: n.Line + line, Col: l.indent(n.Line+1) + col + 1}
	case line > 1:
		fileLine := n.Line + line - 1
		return Pos{Line: fileLine, Col: l.indent(fileLine) + col + 1}
	case n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0:
		return Pos{Line: n.Line, Col: n.Column + col + 1}
	default:
		return Pos{Line: n.Line, Col: n.Column + col}
	}
}

// exprPos maps a rune offset in src to the file.
func (l *loader) exprPos(n *yaml.Node, src string, offset int) Pos {
	line, col := 1, 0
	for i, r := range []rune(src) {
		if i >= offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
	}
	return l.exprLinePos(n, line, col)
}

func (l *loader) indent(line int) int {
	if line < 1 || line > len(l.lines) {
		return 0
	}
	s := l.lines[line-1]
	return len(s) - len(strings.TrimLeft(s, " \t"))
}

// patcher rewrites bound names into vars lookups, so rules can write `peer`
// instead of `vars.peer`; rewrites store reads into reads of one entry or
// one store (stores.go), so no event needs every store; and checks
// `stores.NAME` against the declared stores before type checking, where
// the name would otherwise pass as a map key and fail only at run time.
//
// expr walks the tree children first, so each store read is rewritten
// bottom up: `stores` becomes $stores(stores), then `stores.NAME` on it
// $store(stores, "NAME"), then `[key]` on that $storeGet(stores, "NAME",
// key), and `key in` it $storeHas(stores, "NAME", key). What is left of
// $stores or $store where the tree ends is a read of the whole thing.
type patcher struct {
	locals scope
	stores map[string]*Store
	errs   []patchError
}

type patchError struct {
	offset int
	msg    string
}

func (p *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if slices.Contains(p.locals, n.Value) {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: fetchFunc},
				Arguments: []ast.Node{&ast.IdentifierNode{Value: "vars"}, &ast.StringNode{Value: n.Value}},
			})
			return
		}
		if n.Value == "stores" {
			ast.Patch(node, storeCall(storesFunc))
		}
	case *ast.MemberNode:
		if p.storeMember(node, n) {
			return
		}
		// A field of a decoded JSON value (data.roomId, vars.peer)
		// goes through fetchFunc rather than expr's reflective fetch,
		// which allocates on every map read. The environment's own
		// structs (socket) stay as they are, so the type checker still
		// knows their fields; so do ?. accesses, whose nil short-circuit
		// belongs to expr.
		if id, ok := n.Node.(*ast.IdentifierNode); (ok && id.Value == "socket") || n.Optional || n.Method {
			return
		}
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: fetchFunc}, Arguments: []ast.Node{n.Node, n.Property}})
	case *ast.BinaryNode:
		// key in stores.NAME: one entry's presence, not the store.
		if name, constant, ok := storeCallOf(n.Right, storeFunc); ok && constant && n.Operator == "in" {
			ast.Patch(node, storeCall(storeHasFunc, &ast.StringNode{Value: name}, n.Left))
		}
	}
}

// storeMember rewrites a member access on stores or on one store, and
// reports whether it did. A ?. there is a plain access: neither stores nor
// a declared store is ever nil.
func (p *patcher) storeMember(node *ast.Node, n *ast.MemberNode) bool {
	if _, _, ok := storeCallOf(n.Node, storesFunc); ok {
		prop, constant := n.Property.(*ast.StringNode)
		if constant {
			p.checkStore(n, prop.Value)
		}
		if n.Method {
			return true // stores.NAME(): the type checker reports it
		}
		if constant {
			ast.Patch(node, storeCall(storeFunc, &ast.StringNode{Value: prop.Value}))
		} else {
			ast.Patch(node, storeCall(storeFunc, n.Property))
		}
		return true
	}
	if name, constant, ok := storeCallOf(n.Node, storeFunc); ok && constant && !n.Method {
		ast.Patch(node, storeCall(storeGetFunc, &ast.StringNode{Value: name}, n.Property))
		return true
	}
	return false
}

// checkStore reports stores.NAME for an undeclared NAME.
func (p *patcher) checkStore(n *ast.MemberNode, name string) {
	if _, ok := p.stores[name]; ok {
		return
	}
	known := make([]string, 0, len(p.stores))
	for s := range p.stores {
		known = append(known, s)
	}
	slices.Sort(known)
	p.errs = append(p.errs, patchError{
		offset: n.Location().From,
		msg:    fmt.Sprintf("unknown store %q%s", name, suggest(name, known)),
	})
}
