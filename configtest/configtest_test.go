package configtest

import (
	"errors"
	"strings"
	"testing"

	"github.com/rtcio/rtcio-router/internal/golden"
	"github.com/rtcio/rtcio-router/rules"
)

// TestShippedTests runs every *.test.yaml shipped with the project: the
// built-in rules' and each example's. They must all pass.
func TestShippedTests(t *testing.T) {
	files, err := Find([]string{"../rtcio.test.yaml", "../examples"})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		results, err := RunFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range results {
			if !r.Passed() {
				t.Errorf("%s:%d: %s\n%s", r.File, r.Line, r.Name, r.Failure)
			}
		}
	}
}

// TestFailureReport pins what a user reads when a config test fails.
func TestFailureReport(t *testing.T) {
	results, err := RunFile("testdata/failing.fixture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range results {
		if r.Passed() {
			t.Errorf("%s passed; it must fail", r.Name)
		}
		b.WriteString("--- " + r.Name + "\n" + r.Failure + "\n")
	}
	golden.Check(t, "failing.report", b.String())
}

// TestMalformedFile: unknown keys and contradictions are errors at their
// positions, not silently ignored.
func TestMalformedFile(t *testing.T) {
	_, err := RunFile("testdata/malformed.fixture.yaml")
	if err == nil {
		t.Fatal("malformed file accepted")
	}
	golden.Check(t, "malformed.err", err.Error()+"\n")
}

// TestAliases: anchors and aliases resolve in a test file, as in rtcio.yaml.
func TestAliases(t *testing.T) {
	results, err := RunFile("testdata/aliases.fixture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("got %d results, want 2", len(results))
	}
	for _, r := range results {
		if !r.Passed() {
			t.Errorf("%s:\n%s", r.Name, r.Failure)
		}
	}
}

// TestAliasBomb: a billion-laughs file is refused at a position by the
// walker's visit budget instead of being expanded.
func TestAliasBomb(t *testing.T) {
	// A reader that expanded the aliases would run out of memory or hit the
	// test binary's timeout long before returning.
	_, err := RunFile("testdata/bomb.fixture.yaml")
	if err == nil {
		t.Fatal("alias bomb accepted")
	}
	golden.Check(t, "bomb.err", err.Error()+"\n")
}

// TestUnknownKeys: misspelt keys get a did-you-mean hint at every level,
// repeated keys and wrongly typed values are reported, all sorted by
// position.
func TestUnknownKeys(t *testing.T) {
	_, err := RunFile("testdata/unknown.fixture.yaml")
	if err == nil {
		t.Fatal("file with unknown keys accepted")
	}
	golden.Check(t, "unknown.err", err.Error()+"\n")
}

// TestErrorsArePositioned: every problem in a test file is a rules.Error
// with a line and column, whatever the problem, as for rtcio.yaml.
func TestErrorsArePositioned(t *testing.T) {
	cases := map[string]string{
		"invalid.test.yaml": "tests:\n  - name: x\n   bad: [\n",
		"empty.test.yaml":   "# nothing\n",
		"notests.test.yaml": "config: rtcio.yaml\n",
		"list.test.yaml":    "- 1\n",
	}
	for name, src := range cases {
		_, err := parseFile(name, []byte(src))
		var errs rules.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Errorf("%s: error %T %v, want rules.Errors", name, err, err)
			continue
		}
		for _, e := range errs {
			if e.Pos.Line < 1 || e.Pos.Col < 1 || !strings.HasPrefix(e.Error(), name+":") {
				t.Errorf("%s: not positioned: %v", name, e)
			}
		}
	}
}
