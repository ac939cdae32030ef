package sio

// The relay envelope of rtc.io ({source, target, data} on "#rtcio:message")
// is what pass-through events exist for, so it is what these tests use.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	gojson "github.com/goccy/go-json"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
)

func TestDecodeRelay(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct {
		name, json string
		fast       bool   // decodeObjectEvent takes it
		target     string // the target it reads, when fast
		sent       string // the envelope relayed with source "S", when fast
	}{
		{"candidate", `["#rtcio:message",{"target":"b","data":{"candidate":{"candidate":"candidate:1 1 udp","sdpMid":"0"}}}]`, true, "b",
			`{"source":"S","target":"b","data":{"candidate":{"candidate":"candidate:1 1 udp","sdpMid":"0"}}}`},
		{"client source replaced", `["#rtcio:message",{"source":"x","target":"b","data":{"sdp":"v=0\r\na=\u00e9\"q\""}}]`, true, "b",
			`{"source":"S","target":"b","data":{"sdp":"v=0\r\na=\u00e9\"q\""}}`},
		{"spaces inside", `["#rtcio:message",{ "data" : [1, 2] , "target" : "b" }]`, true, "b", `{"source":"S","data" : [1, 2],"target" : "b"}`},
		{"no target", `["#rtcio:message",{"data":1}]`, true, "", `{"source":"S","data":1}`},
		{"empty", `["#rtcio:message",{}]`, true, "", `{"source":"S"}`},
		{"depth 31 in the envelope", `["#rtcio:message",{"target":"b","data":` + nest(30) + `}]`, true, "b", `{"source":"S","target":"b","data":` + nest(30) + `}`},
		{"depth 32 in the envelope", `["#rtcio:message",{"target":"b","data":` + nest(31) + `}]`, false, "", ""},
		{"number beyond float64", `["#rtcio:message",{"target":"b","data":{"x":[1e400]}}]`, false, "", ""},
		{"long number within float64", `["#rtcio:message",{"target":"b","data":12345678901234567890}]`, true, "b", `{"source":"S","target":"b","data":12345678901234567890}`},
		{"escaped key", `["#rtcio:message",{"tar\u0067et":"b"}]`, false, "", ""},
		{"escaped target", `["#rtcio:message",{"target":"\u0062"}]`, true, "b", `{"source":"S","target":"\u0062"}`},
		{"target not a string", `["#rtcio:message",{"target":7}]`, true, "", `{"source":"S","target":7}`},
		{"repeated other key", `["#rtcio:message",{"data":1,"data":2}]`, false, "", ""},
		{"repeated target", `["#rtcio:message",{"target":"a","target":"b"}]`, false, "", ""},
		{"space after the name", `["#rtcio:message", {"target":"b"}]`, false, "", ""},
		{"two arguments", `["#rtcio:message",{"target":"b"},{"x":1}]`, false, "", ""},
		{"not an object", `["#rtcio:message","b"]`, false, "", ""},
		{"invalid UTF-8", "[\"#rtcio:message\",{\"target\":\"b\",\"data\":\"\xff\"}]", false, "", ""},
		{"malformed", `["#rtcio:message",{"target":"b","data":[1,,2]}]`, false, "", ""},
		{"trailing bytes", `["#rtcio:message",{"target":"b"}x]`, false, "", ""},
		{"other event", `["media-state",{"target":"b"}]`, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.json)
			env, ok := decodeObjectEvent(in, relayEvent.prefix)
			if ok != tc.fast {
				t.Fatalf("fast = %v, want %v", ok, tc.fast)
			}
			if !ok {
				return
			}
			if target, _ := env.String("target"); target != tc.target {
				t.Fatalf("target %q, want %q", target, tc.target)
			}
			// The frame buffer is reused for the next message: nothing
			// decoded may point into it.
			for i := range in {
				in[i] = 'x'
			}
			env.Stamp("source", "S")
			if got := string(env.appendJSON(nil)); got != tc.sent {
				t.Fatalf("relayed\n%s\nwant\n%s", got, tc.sent)
			}
		})
	}
}

// A relayed envelope goes out as one socket.io EVENT with source stamped.
func TestRelayEncodesVerbatim(t *testing.T) {
	env, ok := decodeObjectEvent([]byte(`["#rtcio:message",{"target":"b","data":{"sdp":"v=0\r\n","z":[1,2.50,"\u00e9"]}}]`), relayEvent.prefix)
	if !ok {
		t.Fatal("not fast")
	}
	env.Stamp("source", "a")
	got := wireEncoder{}.Encode(&parser.Packet{Type: parser.EVENT, Nsp: "/", Data: []any{"#rtcio:message", env}})[0].Bytes()
	want := `2["#rtcio:message",{"source":"a","target":"b","data":{"sdp":"v=0\r\n","z":[1,2.50,"\u00e9"]}}]`
	if string(got) != want {
		t.Fatalf("encoded\n%s\nwant\n%s", got, want)
	}
}

// relayEvent is rtc.io's relay as a pass-through event.
var relayEvent = newPassThrough("#rtcio:message")

// FuzzDecodeObjectEvent: whatever object the fast decoder accepts, the
// generic decoder accepts too and reads as the same value, its String
// reads members as the generic decoder does, and the frame the server
// sends for it, a member stamped, decodes to the generic value with that
// member set.
func FuzzDecodeObjectEvent(f *testing.F) {
	for _, s := range []string{`{"target":"b","data":{"candidate":"c"}}`, `{"target":1}`, `{"data":[1,,2]}`,
		`{"a":"\ud800","a":2}`, `{"data":1e400}`, `{"data":"\u0000"}`, `{ "target" : "b" } `, `{"x":{"y":[[[[]]]]}}`,
		`{"data":"\\\"]"}`, `{}`, `{"data":-0}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		frame := append(append([]byte(`["#rtcio:message",`), obj...), ']')
		env, ok := decodeObjectEvent(frame, relayEvent.prefix)
		if !ok {
			return
		}
		var generic any
		if err := gojson.Unmarshal(frame, &generic); err != nil {
			t.Fatalf("%q: fast path accepted what the generic one refuses: %v", frame, err)
		}
		if err := checkClientPacket(&parser.Packet{Type: parser.EVENT, Data: generic}); err != nil {
			t.Fatalf("%q: fast path accepted what the generic check refuses: %v", frame, err)
		}
		genv, _ := generic.([]any)[1].(map[string]any)
		if got := env.Decode(); !reflect.DeepEqual(got, genv) {
			t.Fatalf("%q: fast %#v, generic %#v", frame, got, genv)
		}
		for _, key := range []string{"target", "data", "source"} {
			want, wok := genv[key].(string)
			if got, ok := env.String(key); got != want || ok != wok {
				t.Fatalf("%q: String(%q) = %q, %v; generic %q, %v", frame, key, got, ok, want, wok)
			}
		}
		// What is relayed, source stamped, reads as the generic envelope
		// with source stamped.
		env.Stamp("source", "S")
		genv["source"] = "S"
		sent, ok := appendJSON(nil, []any{"#rtcio:message", env})
		if !ok {
			t.Fatalf("%q: not encodable", frame)
		}
		var back any
		if err := json.Unmarshal(sent, &back); err != nil || !reflect.DeepEqual(back, generic) {
			t.Fatalf("%q: sent %q reads as %#v (%v), want %#v", frame, sent, back, err, generic)
		}
	})
}

// BenchmarkRelayPassThrough: decoding a relayed envelope and encoding it
// for the target, fast path against the generic decode and encode.
func BenchmarkRelayPassThrough(b *testing.B) {
	sdp := strings.Repeat("a=candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ srflx\\r\\n", 60)
	for _, size := range []struct{ name, json string }{
		{"200B", `["#rtcio:message",{"target":"BBBBBBBBBBBBBBBBBBBB","data":{"candidate":{"candidate":"candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ srflx raddr 0.0.0.0 rport 0","sdpMid":"0","sdpMLineIndex":0}}}]`},
		{"4KB", `["#rtcio:message",{"target":"BBBBBBBBBBBBBBBBBBBB","data":{"description":{"type":"offer","sdp":"` + sdp + `"}}}]`},
	} {
		in := []byte(size.json)
		b.Run(size.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			out := make([]byte, 0, 8192)
			for b.Loop() {
				env, ok := decodeObjectEvent(in, relayEvent.prefix)
				if !ok {
					b.Fatal("not fast")
				}
				env.Stamp("source", "AAAAAAAAAAAAAAAAAAAA")
				out, _ = appendJSON(out[:0], []any{env})
			}
		})
		b.Run(size.name+"/generic", func(b *testing.B) {
			b.ReportAllocs()
			out := make([]byte, 0, 8192)
			for b.Loop() {
				var v any
				if err := gojson.Unmarshal(in, &v); err != nil {
					b.Fatal(err)
				}
				env := v.([]any)[1].(map[string]any)
				env["source"] = "AAAAAAAAAAAAAAAAAAAA"
				out, _ = appendJSON(out[:0], v.([]any)[1:])
			}
		})
	}
}

// TestDecodeFrameBorrows: with borrow, the envelope reads the frame itself
// (what the direct path wants: no copy per message), so a frame reused
// afterwards shows through; without it, the envelope is its own copy.
func TestDecodeFrameBorrows(t *testing.T) {
	const frame = `2["#rtcio:message",{"target":"b","data":"x"}]`
	for _, borrow := range []bool{false, true} {
		b := []byte(frame)
		_, _, obj, err := decodeFrame(b, []passThroughEvent{relayEvent}, borrow)
		if err != nil || obj == nil {
			t.Fatalf("borrow=%v: %v, %v", borrow, obj, err)
		}
		want := `{"target":"b","data":"x"}`
		if got := string(obj.appendJSON(nil)); got != want {
			t.Fatalf("borrow=%v: %s, want %s", borrow, got, want)
		}
		b[bytes.LastIndexByte(b, 'x')] = 'y' // the frame buffer, reused
		got := string(obj.appendJSON(nil))
		if borrow && got == want || !borrow && got != want {
			t.Errorf("borrow=%v: after the frame changed the object reads %s", borrow, got)
		}
	}
}
