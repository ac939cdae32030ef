package router

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
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
