package configtest

import (
	"github.com/rtcio/rtcio-router/internal/golden"
	"strings"
	"testing"
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
