package rules

import (
	"strings"
	"testing"
	"time"
)

// TestWalker pins the shared walker's API as configtest uses it: known
// keys with did-you-mean, duplicates, aliases, scalar readers, and errors
// sorted by position whatever order they were found in.
func TestWalker(t *testing.T) {
	src := "base: &b {x: 1}\n" +
		"m: *b\n" +
		"n: 3\n" +
		"d: 2s\n" +
		"f: yes\n" +
		"nmae: v\n" +
		"n: 4\n" +
		"e: {}\n" +
		"l: [1]\n"
	w := NewWalker("w.yaml", []byte(src))
	doc, ok := w.Document()
	if !ok {
		t.Fatal(w.Errors())
	}
	known := []string{"base", "m", "n", "d", "f", "name", "e", "l"}
	got := map[string]bool{}
	var e, l, f Pair
	for _, p := range w.Pairs(doc.Content[0], "the file", known) {
		got[p.Key.Value] = true
		switch p.Key.Value {
		case "m":
			if ps := w.Pairs(p.Val, "m", []string{"x"}); len(ps) != 1 || ps[0].Val.Value != "1" {
				t.Errorf("alias not resolved: %v", ps)
			}
		case "n":
			if v, ok := w.Int(p.Val, "n", 1, 3); !ok || v != 3 {
				t.Errorf("Int = %d, %v", v, ok)
			}
		case "d":
			if v, ok := w.Duration(p.Val, "d"); !ok || v != 2*time.Second {
				t.Errorf("Duration = %v, %v", v, ok)
			}
		case "f":
			f = p
		case "e":
			e = p
		case "l":
			l = p
		}
	}
	if got["nmae"] || !got["n"] {
		t.Errorf("entries: %v", got)
	}
	// Errors found out of order: last line first.
	if ps := w.Pairs(l.Val, "l", nil); ps != nil {
		t.Errorf("Pairs of a list = %v, want nil", ps)
	}
	if ps := w.Pairs(e.Val, "e", nil); ps == nil || len(ps) != 0 {
		t.Errorf("Pairs of {} = %v, want empty, not nil", ps)
	}
	if _, ok := w.Bool(f.Val, "f"); ok {
		t.Error(`Bool accepted "yes"`)
	}
	want := strings.Join([]string{
		`w.yaml:5:4: f must be true or false, got "yes"`,
		`w.yaml:6:1: the file: unknown field "nmae" (did you mean "name"?)`,
		`w.yaml:7:1: the file: duplicate key "n"`,
		`w.yaml:9:4: l must be a mapping, got a list`,
	}, "\n")
	if got := w.Errors().Error(); got != want {
		t.Errorf("errors:\n%s\nwant:\n%s", got, want)
	}

	bad := NewWalker("bad.yaml", []byte("a: 1\n b: [\n"))
	if _, ok := bad.Document(); ok {
		t.Fatal("invalid YAML parsed")
	}
	if errs := bad.Errors(); len(errs) != 1 || errs[0].Pos.Line < 1 || !strings.HasPrefix(errs[0].Error(), "bad.yaml:") {
		t.Errorf("invalid YAML: %v", errs)
	}
	if NewWalker("ok.yaml", []byte("a: 1\n")).Errors() != nil {
		t.Error("Errors of a clean walk is not nil")
	}
}
