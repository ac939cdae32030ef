package router_test

import (
	"strings"
	"testing"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// TestCORSOrigins: with cors_origins set, a handshake from another origin
// is refused on polling and on WebSocket, and a listed origin connects.
func TestCORSOrigins(t *testing.T) {
	src := strings.Replace(string(builtinRules(t)), `cors_origins: ["*"]`, `cors_origins: ["https://app.example.com"]`, 1)
	_, url := startRouter(t, []byte(src))
	js := jsclient.Start(t)
	for _, transport := range []string{"polling", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			evil := js.Connect("evil-"+transport, url, map[string]any{
				"transports":   []string{transport},
				"reconnection": false,
				"extraHeaders": map[string]any{"Origin": "https://evil.example.com"},
			}).WithT(t)
			if ce := evil.WaitConnectError(); ce.Message == "" {
				t.Fatalf("unlisted origin: want connect_error, got %+v", ce)
			}
			if evil.Connected() {
				t.Fatal("unlisted origin connected")
			}
			good := js.Connect("good-"+transport, url, map[string]any{
				"transports":   []string{transport},
				"extraHeaders": map[string]any{"Origin": "https://app.example.com"},
			}).WithT(t)
			good.WaitConnected()
		})
	}
}
