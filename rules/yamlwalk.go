package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Walker reads a hand-written YAML file node by node.
//
// It exists because the project has two readers of hand-written YAML, the
// rules loader (rtcio.yaml) and configtest (*.test.yaml), and both need
// what decoding into structs does not give: every problem reported at the
// FILE:LINE:COL the user must edit, all of them at once and sorted rather
// than the first one; unknown keys refused with a did-you-mean hint and
// duplicate keys refused (yaml.v3 keeps both silently in a Node); anchors
// and aliases followed; and a budget of visited nodes, because aliases let
// a few lines describe billions of nodes (an alias bomb) and a walk must be
// refused, not run, then. One walker keeps the two readers' messages,
// positions and defences the same.
//
// A reader calls Document, walks the tree with Pairs and the scalar
// readers (Str, Int, Duration, Bool), calls Spend once per node it visits
// where aliases could multiply the nodes, and returns Errors.
type Walker struct {
	file string
	src  []byte
	errs Errors
	// rule is the rule being read, named in messages; only the rules
	// loader sets it.
	rule string
	// visits counts the nodes Spend was called for. Aliases can make a
	// small file describe an exponentially large tree, so the walk has a
	// budget.
	visits int
}

// maxVisits is far above any real file and far below a slow load.
const maxVisits = 100_000

// NewWalker starts a walk of src, the file named file in messages.
func NewWalker(file string, src []byte) *Walker {
	return &Walker{file: file, src: src}
}

// Document parses the file and returns its document node (whose Content
// is empty for an empty file). It returns false when the file is not valid
// YAML, the error recorded at its line.
func (w *Walker) Document() (*yaml.Node, bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(w.src, &doc); err != nil {
		w.errs = append(w.errs, yamlError(w.file, err))
		return nil, false
	}
	return &doc, true
}

// yamlError turns yaml.v3's "yaml: line N: msg" into our positioned form.
func yamlError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ":"); ok {
			if n, convErr := strconv.Atoi(num); convErr == nil {
				line, msg = n, strings.TrimSpace(tail)
			}
		}
	}
	return &Error{File: file, Pos: Pos{Line: line, Col: 1}, Msg: "invalid YAML: " + msg}
}

// Errors returns the problems recorded so far, sorted by position, with a
// problem reported twice at one spot said once; nil when there are none.
func (w *Walker) Errors() Errors {
	if len(w.errs) == 0 {
		return nil
	}
	return append(Errors(nil), w.errs...).sorted()
}

// Errf records a problem at n's position.
func (w *Walker) Errf(n *yaml.Node, format string, args ...any) {
	w.ErrAt(posOf(n), format, args...)
}

// ErrAt records a problem at p.
func (w *Walker) ErrAt(p Pos, format string, args ...any) {
	w.errs = append(w.errs, &Error{File: w.file, Pos: p, Rule: w.rule, Msg: fmt.Sprintf(format, args...)})
}

// Spend counts one node visit and reports false once the budget is gone,
// reporting that once, at n.
func (w *Walker) Spend(n *yaml.Node) bool {
	w.visits++
	if w.visits == maxVisits {
		w.Errf(n, "the file expands to more than %d nodes (aliases?); refusing to read further", maxVisits)
	}
	return w.visits < maxVisits
}

func posOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

// Resolve follows aliases, so anchors work as users expect.
func (w *Walker) Resolve(n *yaml.Node) *yaml.Node { return resolve(n) }

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

// KindName describes what a node holds for messages: "a mapping", "a
// list", "nothing" (null) or a scalar's value, quoted.
func KindName(n *yaml.Node) string { return kindName(n) }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	default:
		return "an alias"
	}
}

// Pair is one key/value of a mapping, both with aliases resolved.
type Pair struct{ Key, Val *yaml.Node }

// Pairs checks that n is a mapping and returns its entries in order. It
// reports keys that are not plain names and duplicate keys and leaves them
// out; with known non-nil, it also reports (with a did-you-mean hint) and
// leaves out keys not in known, naming the mapping what in messages. It
// returns nil when n is not a mapping (reported), an empty slice for an
// empty mapping.
func (w *Walker) Pairs(n *yaml.Node, what string, known []string) []Pair {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		w.Errf(n, "%s must be a mapping, got %s", what, kindName(n))
		return nil
	}
	seen := map[string]bool{}
	out := make([]Pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			w.Errf(k, "%s: keys must be plain names", what)
		case seen[k.Value]:
			w.Errf(k, "%s: duplicate key %q", what, k.Value)
		default:
			seen[k.Value] = true
			if known != nil && !slices.Contains(known, k.Value) {
				w.Unknown(k, what, known)
				continue
			}
			out = append(out, Pair{k, resolve(v)})
		}
	}
	return out
}

// Unknown reports k as a key the mapping where does not have, with a
// did-you-mean hint from known.
func (w *Walker) Unknown(k *yaml.Node, where string, known []string) {
	w.Errf(k, "%s: unknown field %q%s", where, k.Value, suggest(k.Value, known))
}

// Str reads a string: any scalar but null.
func (w *Walker) Str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		w.Errf(n, "%s must be a string, got %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// Int reads a whole number from min to max.
func (w *Walker) Int(n *yaml.Node, what string, min, max int64) (int64, bool) {
	if n.Kind == yaml.ScalarNode {
		if v, err := strconv.ParseInt(n.Value, 10, 64); err == nil && v >= min && v <= max {
			return v, true
		}
	}
	w.Errf(n, "%s must be a whole number from %d to %d, got %s", what, min, max, kindName(n))
	return 0, false
}

// Duration reads a positive duration such as 25s or 1m30s.
func (w *Walker) Duration(n *yaml.Node, what string) (time.Duration, bool) {
	if n.Kind == yaml.ScalarNode {
		if d, err := time.ParseDuration(n.Value); err == nil && d > 0 {
			return d, true
		}
	}
	w.Errf(n, "%s must be a positive duration such as 25s, got %s", what, kindName(n))
	return 0, false
}

// Bool reads true or false (YAML also writes True and TRUE).
func (w *Walker) Bool(n *yaml.Node, what string) (v, ok bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		return strings.EqualFold(n.Value, "true"), true
	}
	w.Errf(n, "%s must be true or false, got %s", what, kindName(n))
	return false, false
}

// The short names below are the ones the rules loader's code was written
// with; the loader embeds a *Walker, so they are its methods.

// pair is one key/value of a mapping, as the loader reads it.
type pair struct{ key, val *yaml.Node }

// pairs is Pairs without known keys: the loader's switches report unknown
// keys themselves, in their default case.
func (w *Walker) pairs(n *yaml.Node, what string) []pair {
	ps := w.Pairs(n, what, nil)
	if ps == nil {
		return nil // not a mapping: ruleNode tells this from an empty one
	}
	out := make([]pair, len(ps))
	for i, p := range ps {
		out[i] = pair{p.Key, p.Val}
	}
	return out
}

func (w *Walker) errf(n *yaml.Node, format string, args ...any) { w.Errf(n, format, args...) }
func (w *Walker) errAt(p Pos, format string, args ...any)       { w.ErrAt(p, format, args...) }
func (w *Walker) spend(n *yaml.Node) bool                       { return w.Spend(n) }
func (w *Walker) unknown(k *yaml.Node, where string, known []string) {
	w.Unknown(k, where, known)
}
func (w *Walker) str(n *yaml.Node, what string) (string, bool) { return w.Str(n, what) }

func (w *Walker) duration(n *yaml.Node, what string) time.Duration {
	d, _ := w.Duration(n, what)
	return d
}

func (w *Walker) boolean(n *yaml.Node, what string) bool {
	v, _ := w.Bool(n, what)
	return v
}
