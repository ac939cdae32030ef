package rules

import (
	"github.com/rtcio/rtcio-router/internal/golden"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update is -update, shared by every golden test of the package.
var update = golden.Flag()

// TestBadFiles loads every testdata/*.bad.yaml and compares all of its
// positioned errors with NAME.err.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bad.yaml")
		t.Run(name, func(t *testing.T) {
			set, err := Load(f, Options{Environ: map[string]string{}})
			if err == nil {
				t.Fatalf("loaded %d rules; want errors", set.Len())
			}
			golden.Check(t, name+".err", err.Error()+"\n")
		})
	}
}

// TestErrorsArePositioned checks the shape every error must have, whatever
// the file: FILE:LINE:COL: message.
func TestErrorsArePositioned(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	for _, f := range files {
		_, err := Load(f, Options{Environ: map[string]string{}})
		errs, ok := err.(Errors)
		if !ok {
			t.Fatalf("%s: error is %T, want Errors", f, err)
		}
		for _, e := range errs {
			if e.Pos.Line < 1 || e.Pos.Col < 1 {
				t.Errorf("%s: no position: %v", f, e)
			}
			if strings.Contains(e.Msg, "rules.") || strings.Contains(e.Msg, "yaml.Node") {
				t.Errorf("%s: Go type leaks into message: %v", f, e)
			}
		}
	}
}

// TestBuiltinSummary pins how the shipped rtcio.yaml compiles.
func TestBuiltinSummary(t *testing.T) {
	set, err := Load("../rtcio.yaml", Options{Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "rtcio.summary", strings.Join(set.Summary(), "\n")+"\n")
}

// TestExamplesLoad loads every example config through the same Load the
// server uses.
func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../examples/*/rtcio.yaml")
	// examples/jwt-auth refuses to load without its secret.
	environ := map[string]string{"JWT_SECRET": "s3cret"}
	for _, f := range files {
		if _, err := Load(f, Options{Environ: environ}); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
}

func TestPositions(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"plain", "rules:\n  - event: e\n    validate: data.x ==\n    do: [{ack: 1}]\n",
			"t.yaml:3:23: rule \"e\": validate: unexpected token EOF"},
		{"single quoted", "rules:\n  - event: e\n    validate: 'foo == 1'\n    do: [{ack: 1}]\n",
			"t.yaml:3:16: rule \"e\": validate: unknown name \"foo\""},
		{"double quoted", "rules:\n  - event: e\n    validate: \"1 == foo\"\n    do: [{ack: 1}]\n",
			"t.yaml:3:21: rule \"e\": validate: unknown name \"foo\""},
		{"literal block", "rules:\n  - event: e\n    validate: |\n      data != nil &&\n        foo\n    do: [{ack: 1}]\n",
			"t.yaml:5:9: rule \"e\": validate: unknown name \"foo\""},
		{"typo hint", "rules:\n  - event: e\n    do:\n      - ack: sockt.id\n",
			"t.yaml:4:14: rule \"e\": ack: unknown name \"sockt\" (did you mean \"socket\"?)"},
		{"local hint", "rules:\n  - event: e\n    do:\n      - let: {peer: 1}\n      - ack: per\n",
			"t.yaml:5:14: rule \"e\": ack: unknown name \"per\" (did you mean \"peer\"?)"},
		{"local out of scope", "rules:\n  - event: e\n    do:\n      - for_each: args\n        as: item\n        do: [{ack: item}]\n      - ack: item\n",
			"t.yaml:7:14: rule \"e\": ack: unknown name \"item\""},
		{"function arg type", "rules:\n  - event: e\n    do:\n      - ack: room_size(1)\n",
			"t.yaml:4:24: rule \"e\": ack: cannot use int as argument (type string) to call room_size "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.src), Options{Environ: map[string]string{}})
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	set, err := Parse("t.yaml", []byte("rules: []\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	sv := set.Server
	if sv.Listen != DefaultListen || sv.Path != DefaultPath || sv.MaxPayload != DefaultMaxPayload || !set.Relay.SharedRoomOnly {
		t.Errorf("defaults: %+v %+v", sv, set.Relay)
	}
}

// FuzzParse feeds arbitrary bytes to the loader: it must return a Set or
// errors, never panic or hang.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, "../rtcio.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: &a [*a, *a]\nrules: *a\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		set, err := Parse("fuzz.yaml", src, Options{Environ: map[string]string{}})
		if err == nil && set == nil {
			t.Fatal("nil set without error")
		}
		if err != nil {
			for _, e := range err.(Errors) {
				if e.Msg == "" {
					t.Fatal("empty message")
				}
			}
		}
	})
}

// parseSection parses a top-level section (yaml) ahead of an empty rule
// list, as the section tests do. With wantErr set it checks that parsing
// fails with an error containing wantErr and returns nil; otherwise it
// returns the set, failing the test on any error.
func parseSection(t *testing.T, yaml, wantErr string) *Set {
	t.Helper()
	set, err := Parse("t.yaml", []byte(yaml+"rules: []\n"), Options{Environ: map[string]string{}})
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one containing %q", err, wantErr)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return set
}
