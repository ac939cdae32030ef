package sio

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	gojson "github.com/goccy/go-json"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// TestWireEncoderMatchesLibrary: for every kind of packet the server sends,
// wireEncoder writes exactly the bytes the library's encoder writes.
func TestWireEncoderMatchesLibrary(t *testing.T) {
	id := uint64(42)
	payload := map[string]any{
		"source": "a", "target": "b", "n": 1.5, "ok": true, "none": nil,
		"text": "<b>&\"é\u2028", "list": []any{1.0, "x", map[string]any{"z": 1.0, "a": []any{}}},
	}
	packets := []*parser.Packet{
		{Type: parser.CONNECT, Nsp: "/", Data: map[string]any{"sid": "abc"}},
		{Type: parser.CONNECT, Nsp: "/admin", Data: map[string]any{"sid": "abc", "pid": "p"}},
		{Type: parser.CONNECT_ERROR, Nsp: "/", Data: map[string]any{"message": "unauthorized: no token", "data": map[string]any{"code": "no-token"}}},
		{Type: parser.DISCONNECT, Nsp: "/"},
		{Type: parser.EVENT, Nsp: "/", Data: []any{"#rtcio:message", payload}},
		{Type: parser.EVENT, Nsp: "/chat", Data: []any{"bare"}},
		{Type: parser.EVENT, Nsp: "/", Data: []any{"e", payload, "offset-1"}},
		{Type: parser.ACK, Nsp: "/", Id: &id, Data: []any{map[string]any{"ok": false}}},
		{Type: parser.EVENT, Nsp: "/", Id: &id, Data: []any{"with-ack", 1.0}},
	}
	lib := parser.NewEncoder()
	for _, p := range packets {
		want := lib.Encode(p)
		got := wireEncoder{}.Encode(p)
		if len(want) != 1 || len(got) != 1 {
			t.Fatalf("%+v: %d and %d buffers", p, len(want), len(got))
		}
		if w, g := want[0].String(), got[0].String(); w != g {
			t.Errorf("packet %+v:\n  library %s\n  router  %s", p, w, g)
		}
	}
}

func BenchmarkEncodeRelay(b *testing.B) {
	p := &parser.Packet{Type: parser.EVENT, Nsp: "/", Data: []any{"#rtcio:message", map[string]any{
		"source": "AAAAAAAAAAAAAAAAAAAA", "target": "BBBBBBBBBBBBBBBBBBBB",
		"data": map[string]any{"candidate": map[string]any{"candidate": "candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999", "sdpMid": "0", "sdpMLineIndex": 0.0}},
	}}}
	for _, enc := range []struct {
		name string
		e    parser.Encoder
	}{{"library", parser.NewEncoder()}, {"router", wireEncoder{}}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				enc.e.Encode(p)
			}
		})
	}
}

// TestAppendJSONMatchesEncodingJSON: appendJSON writes exactly what
// json.Marshal writes, on edge cases and on random values.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, 0.0, -0.0, 1.0, -1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.123, 5e-324, math.MaxFloat64, -1e-7, 1e100,
		0, -42, int64(1) << 62, "", "plain", "quote\" back\\ slash", "\x00\x01\x1f\x7f", "<script>&</script>", "\u2028\u2029",
		"é日本語🎉", "bad \xff utf8 \xc3", "\t\n\r\b\f", []any{}, []any(nil), []string{"a", "<"}, []string(nil),
		map[string]any{}, map[string]any{"b": 1.0, "a": []any{nil, "x"}, "<k>": map[string]any{"z": true}},
		struct{ A int }{1},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		values = append(values, math.Float64frombits(rng.Uint64()), rng.NormFloat64()*math.Pow(10, float64(rng.IntN(60)-30)))
		r := make([]byte, rng.IntN(12))
		for j := range r {
			r[j] = byte(rng.IntN(256))
		}
		values = append(values, string(r))
	}
	for _, v := range values {
		want, werr := json.Marshal(v)
		got, ok := appendJSON(nil, v)
		if (werr == nil) != ok || (ok && string(got) != string(want)) {
			t.Errorf("%#v:\n  encoding/json %s (%v)\n  appendJSON    %s (%v)", v, want, werr, got, ok)
		}
	}
}

// FuzzAppendJSON compares appendJSON with encoding/json on strings and
// numbers from the fuzzer.
func FuzzAppendJSON(f *testing.F) {
	f.Add("<a&b>", 1e21)
	f.Add("\u2028\xff", -1e-7)
	f.Fuzz(func(t *testing.T, s string, x float64) {
		v := map[string]any{s: []any{s, x}}
		want, werr := json.Marshal(v)
		got, ok := appendJSON(nil, v)
		if (werr == nil) != ok || (ok && string(got) != string(want)) {
			t.Fatalf("%#v: encoding/json %s, appendJSON %s", v, want, got)
		}
	})
}

// TestReleasingWriterForgetsResponse: once the upgrade hijacks the
// connection, the writer the engine keeps no longer reaches net/http's
// response (and its per-connection buffers), and behaves as hijacked.
func TestReleasingWriterForgetsResponse(t *testing.T) {
	done := make(chan *releasingWriter, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &releasingWriter{ResponseWriter: w}
		conn, _, err := http.NewResponseController(rw).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			done <- rw
			return
		}
		_, _ = conn.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
		_ = conn.Close()
		done <- rw
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	rw := <-done
	if _, ok := rw.ResponseWriter.(hijackedWriter); !ok {
		t.Fatalf("after the hijack the writer still holds %T", rw.ResponseWriter)
	}
	if _, err := rw.Write([]byte("x")); err != http.ErrHijacked {
		t.Errorf("write after hijack: %v, want ErrHijacked", err)
	}
	if _, _, err := rw.Hijack(); err != http.ErrHijacked {
		t.Errorf("second hijack: %v, want ErrHijacked", err)
	}
}

// TestDecodeTextMatchesLibrary: on valid client frames wireDecoder yields
// the packet the library decoder yields; on frames the library refuses it
// refuses too (it refuses some more, listed in wireDecoder's comment).
func TestDecodeTextMatchesLibrary(t *testing.T) {
	frames := []string{
		`0`, `0{"token":"t"}`, `0/admin,`, `0/admin,{"a":1}`, `1`, `1/admin,`,
		`2["join-room",{"roomId":"r1","name":"é<>"}]`, `2/admin,["e"]`, `212["e",1,null,true,[],{}]`,
		`2/chat,7["e",{"deep":{"x":[1,2,{"y":"z"}]}}]`, `3[]`, `35["ok"]`, `3/admin,9[{"a":1}]`,
		`2["#rtcio:message",{"target":"b","data":{"sdp":"v=0\r\n"}}]`,
		// refused by both
		``, `7`, `x`, `2`, `2[]`, `2{}`, `2"x"`, `2[null]`, `2["connect"]`, `2["disconnect"]`, `0"x"`, `0[1]`,
		`2[`, `2["a",]`, `3{}`, `1{}`, `2/` + strings.Repeat("n", 600) + `,["e"]`, `2123456789012345678901["e"]`,
	}
	lib := parser.NewDecoder()
	var libGot *parser.Packet
	_ = lib.On("decoded", func(a ...any) { libGot, _ = a[0].(*parser.Packet) })
	for _, f := range frames {
		libGot = nil
		libErr := lib.Add(f)
		got, err := decodeText([]byte(f))
		if err == nil {
			err = checkClientPacket(got)
		}
		libOK := libErr == nil && libGot != nil && checkClientPacket(libGot) == nil
		if libOK != (err == nil) {
			t.Errorf("%q: library ok=%v (%v), router err=%v", f, libOK, libErr, err)
			continue
		}
		if libOK && (got.Type != libGot.Type || got.Nsp != libGot.Nsp || !reflect.DeepEqual(got.Data, libGot.Data) ||
			(got.Id == nil) != (libGot.Id == nil) || (got.Id != nil && *got.Id != *libGot.Id)) {
			t.Errorf("%q:\n  library %+v\n  router  %+v", f, libGot, got)
		}
	}
}

// BenchmarkDecodeRelay compares the library decoder with wireDecoder on a
// relayed ICE candidate and a 4 KB SDP offer, as the engine hands them over.
func BenchmarkDecodeRelay(b *testing.B) {
	sdp := strings.Repeat("a=candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ srflx\\r\\n", 60)
	for _, size := range []struct{ name, frame string }{
		{"200B", `2["#rtcio:message",{"target":"BBBBBBBBBBBBBBBBBBBB","data":{"candidate":{"candidate":"candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ srflx raddr 0.0.0.0 rport 0","sdpMid":"0","sdpMLineIndex":0}}}]`},
		{"4KB", `2["#rtcio:message",{"target":"BBBBBBBBBBBBBBBBBBBB","data":{"description":{"type":"offer","sdp":"` + sdp + `"}}}]`},
	} {
		for _, dec := range []struct {
			name string
			d    parser.Decoder
		}{{"library", parser.NewDecoder()}, {"router", (&wireParser{passThrough: []passThroughEvent{newPassThrough("#rtcio:message")}}).NewDecoder()}} {
			b.Run(size.name+"/"+dec.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := dec.d.Add(types.NewStringBufferString(size.frame)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// FuzzDecodeJSON: goccy/go-json, which wireDecoder uses, accepts exactly
// what encoding/json accepts and yields the same values.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`["e",{"a":1.5e3,"b":[true,null],"c":"\u00e9\ud83d\ude00"}]`, `"\xff"`, `[1,]`, `{"a":1}x`,
		`"\ud800"`, `1e400`, `-0`, `[[[[[[[[1]]]]]]]]`, `{"a":1,"a":2}`, "\"\x7f\"", `" \u0000 "`, `{"":""}`, ` [ 1 , 2 ] `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got any
		werr := json.Unmarshal(b, &want)
		gerr := gojson.Unmarshal(b, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: encoding/json err %v, go-json err %v", b, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("%q: encoding/json %#v, go-json %#v", b, want, got)
		}
	})
}
