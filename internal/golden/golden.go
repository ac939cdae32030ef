// Package golden compares test output with files under testdata/, so
// exact messages (positioned errors, failure reports) are pinned in review
// and refreshed with `go test -update` when they change on purpose.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// Update reports whether -update was given, for tests that write other
// generated files the same way.
func Update() bool { return *update }

// Check compares got with testdata/name, or rewrites the file with -update.
func Check(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// Flag returns the -update flag itself, for packages that keep a variable
// of their own pointing at it.
func Flag() *bool { return update }
