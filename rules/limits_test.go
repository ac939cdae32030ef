package rules

import (
	"strings"
	"testing"
)

// TestRelayByteBudget: limits.relay reads the byte budget beside the
// envelope bucket, each key left out keeping its default, so that a file
// tightening one budget never loses the other.
func TestRelayByteBudget(t *testing.T) {
	const rules = "rules: []\n"
	type budget struct {
		rate  float64
		burst int
		spec  string
	}
	tests := []struct {
		name       string
		src        string
		msgs, byts *budget // nil: unlimited
	}{
		{"no limits section", rules,
			&budget{1000, 2000, "1000/s"}, &budget{512 << 10, 1 << 20, "512KiB/s"}},
		{"envelope rate only keeps the byte default", "limits:\n  relay: { rate: 200/s }\n" + rules,
			&budget{200, 200, "200/s"}, &budget{512 << 10, 1 << 20, "512KiB/s"}},
		{"bytes only keeps the envelope default, burst the rate's size", "limits:\n  relay: { bytes: 1MB/s }\n" + rules,
			&budget{1000, 2000, "1000/s"}, &budget{1e6, 1e6, "1MB/s"}},
		{"bytes_burst before bytes", "limits:\n  relay: { bytes_burst: 256KiB, bytes: 64KiB/100ms }\n" + rules,
			&budget{1000, 2000, "1000/s"}, &budget{640 << 10, 256 << 10, "64KiB/100ms"}},
		{"spaces and a plain count", "limits:\n  relay: { bytes: 65536 / 2s, bytes_burst: 131072 }\n" + rules,
			&budget{1000, 2000, "1000/s"}, &budget{32768, 131072, "65536/2s"}},
		{"bytes off", "limits:\n  relay: { rate: 10/s, bytes: off }\n" + rules,
			&budget{10, 10, "10/s"}, nil},
		{"an empty relay mapping is the defaults", "limits:\n  relay: {}\n" + rules,
			&budget{1000, 2000, "1000/s"}, &budget{512 << 10, 1 << 20, "512KiB/s"}},
		{"relay off turns off both", "limits:\n  relay: off\n" + rules, nil, nil},
	}
	check := func(t *testing.T, what string, got *Bucket, want *budget) {
		t.Helper()
		switch {
		case want == nil && got != nil:
			t.Errorf("%s: %+v, want unlimited", what, *got)
		case want != nil && got == nil:
			t.Errorf("%s: unlimited, want %+v", what, *want)
		case want != nil && (got.Rate != want.rate || got.Burst != want.burst || got.Spec != want.spec):
			t.Errorf("%s: rate %v burst %d spec %q, want %+v", what, got.Rate, got.Burst, got.Spec, *want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("t.yaml", []byte(tt.src), Options{Environ: map[string]string{}})
			if err != nil {
				t.Fatal(err)
			}
			check(t, "relay", set.Limits.Relay, tt.msgs)
			check(t, "relay bytes", set.Limits.RelayBytes, tt.byts)
		})
	}

	// One reject answers a drop by either budget.
	set, err := Parse("t.yaml", []byte("limits:\n  relay: { bytes: 1MiB/s, reject: { emit: slow-down } }\n"+rules), Options{Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if r := set.Limits.RelayBytes.Reject; r == nil || r != set.Limits.Relay.Reject {
		t.Errorf("the byte budget's reject %v, want the relay's %v", r, set.Limits.Relay.Reject)
	}
}

// TestRelayByteBudgetErrors: mistakes in the byte budget are refused at
// their line and column, like every other key.
func TestRelayByteBudgetErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"limits:\n  relay: { bytes: 1GB/s }\n", `t.yaml:2:19: limits.relay.bytes: the size must be a positive byte count such as 65536, 512KiB or 1MB, got "1GB"`},
		{"limits:\n  relay: { bytes: 0/s }\n", `t.yaml:2:19: limits.relay.bytes: the size must be a positive byte count`},
		{"limits:\n  relay: { bytes: 1MiB }\n", `t.yaml:2:19: limits.relay.bytes: want SIZE/UNIT such as 512KiB/s, 1MB/s or 64KiB/100ms, got "1MiB"`},
		{"limits:\n  relay: { bytes: 1MiB/week }\n", `t.yaml:2:19: limits.relay.bytes: the unit must be s, m, h or a duration such as 10s, got "week"`},
		{"limits:\n  relay: { bytes: [1MiB/s] }\n", `t.yaml:2:19: limits.relay.bytes must be a string, got a list`},
		{"limits:\n  relay: { bytes_burst: 10 }\n", `t.yaml:2:25: limits.relay.bytes_burst must be a whole number of at least 1024`},
		{"limits:\n  relay: { bytes: off, bytes_burst: 1MiB }\n", `t.yaml:2:24: limits.relay.bytes_burst has no effect with bytes: off`},
		{"limits:\n  relay: { byte: 1MiB/s }\n", `t.yaml:2:12: limits.relay: unknown field "byte" (did you mean "bytes"?)`},
		// The byte budget is the relay's alone: other events are not
		// counted in bytes.
		{"limits:\n  all: { rate: 20/s, bytes: 1MiB/s }\n", `t.yaml:2:22: limits.all: unknown field "bytes"`},
	}
	sch := compiledSchema(t)
	for _, tt := range tests {
		src := tt.src + "rules: []\n"
		_, err := Parse("t.yaml", []byte(src), Options{Environ: map[string]string{}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q:\ngot  %v\nwant %s", tt.src, err, tt.want)
		}
		if sch.Validate(yamlInstance(t, []byte(src))) == nil {
			t.Errorf("%q: the schema accepts what the decoder refuses", tt.src)
		}
	}
}

// TestRelayByteBudgetSummary: the summary names the byte budget, in the
// units a user writes.
func TestRelayByteBudgetSummary(t *testing.T) {
	set, err := Parse("t.yaml", []byte("limits:\n  relay: { rate: 200/s, burst: 500, bytes: 256KiB/s, bytes_burst: 393216 }\nrules: []\n"), Options{Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := set.Limits.describe(), "relay 200/s burst 500; relay bytes 256KiB/s burst 384KiB; flood 1000 drops in 10s"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}
