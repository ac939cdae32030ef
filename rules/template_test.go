package rules

import (
	"testing"
)

// TestTemplateNull: a YAML null scalar in a template (`null`, `~`, `Null`,
// or a key with nothing after it) is a null template, which the router
// sends as JSON null; the expression `nil`, a quoted "null" and other
// scalars keep their kinds.
func TestTemplateNull(t *testing.T) {
	src := `
rules:
  - event: e
    do:
      - emit: out
        to: sender
        payload:
          a: null
          b: ~
          c: Null
          d:
          e: nil
          f: "null"
          g: data.x
          h: [null, 1]
          i: { j: ~ }
      - emit: bare
        to: sender
        payload: null
`
	set, err := Parse("t.yaml", []byte(src), Options{Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	acts := set.For("e")[0].Actions
	p := acts[0].(*Emit).Payload
	if p.Kind != TemplateObject {
		t.Fatalf("payload kind %v, want an object", p.Kind)
	}
	want := map[string]TemplateKind{
		"a": TemplateNull, "b": TemplateNull, "c": TemplateNull, "d": TemplateNull,
		"e": TemplateExpr, "f": TemplateString, "g": TemplateExpr, "h": TemplateArray, "i": TemplateObject,
	}
	if len(p.Keys) != len(want) {
		t.Fatalf("keys %v, want %d of them", p.Keys, len(want))
	}
	for i, k := range p.Keys {
		if got := p.Fields[i].Kind; got != want[k] {
			t.Errorf("%s: kind %v, want %v", k, got, want[k])
		}
	}
	if f := p.Fields[5]; f.Const != "null" {
		t.Errorf(`f: const %q, want the string "null"`, f.Const)
	}
	if item := p.Fields[7].Items[0]; item.Kind != TemplateNull {
		t.Errorf("h[0]: kind %v, want null", item.Kind)
	}
	if j := p.Fields[8].Fields[0]; j.Kind != TemplateNull {
		t.Errorf("i.j: kind %v, want null", j.Kind)
	}
	if bare := acts[1].(*Emit).Payload; bare == nil || bare.Kind != TemplateNull {
		t.Errorf("payload: null is %+v, want a null template", bare)
	}
}
