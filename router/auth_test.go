package router_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rtcio/rtcio-router/internal/jsclient"
)

const testJWTSecret = "integration-secret-do-not-use"

func hs256(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func userClaims(name string, rooms []string, exp time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": strings.ToLower(name), "name": name, "rooms": rooms, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(exp).Unix()}
}

func withToken(token string) map[string]any {
	return map[string]any{"transports": []string{"websocket"}, "auth": map[string]any{"token": token}, "reconnection": false}
}

// TestExampleJWTAuth runs examples/jwt-auth with the official client:
// refused handshakes get connect_error with a message the client can act
// on, and an admitted socket's name and rooms come from its token.
func TestExampleJWTAuth(t *testing.T) {
	src, err := os.ReadFile("../examples/jwt-auth/rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, url := startRouterEnv(t, src, map[string]string{"JWT_SECRET": testJWTSecret})
	js := jsclient.Start(t)

	for _, tc := range []struct {
		name, token, message, code string
	}{
		{"none", "", "unauthorized: no token", "no-token"},
		{"expired", hs256(t, testJWTSecret, userClaims("Old", []string{"r1"}, -time.Hour)), "unauthorized: token expired", "token-expired"},
		{"forged", hs256(t, "guessed", userClaims("Alice", []string{"r1"}, time.Hour)), "unauthorized: invalid token", "invalid-token"},
		{"no-exp", hs256(t, testJWTSecret, jwt.MapClaims{"sub": "u1", "name": "Nemo", "rooms": []string{"r1"}, "iat": time.Now().Unix()}), "unauthorized: token has no expiry", "token-no-expiry"},
		{"no-rooms", hs256(t, testJWTSecret, jwt.MapClaims{"name": "Carol", "exp": time.Now().Add(time.Hour).Unix()}), "forbidden: the token grants no rooms", "no-rooms"},
	} {
		c := js.Connect(tc.name, url, withToken(tc.token))
		got := c.WaitConnectError()
		if got.Message != tc.message || !jsclient.Equal(got.Data, map[string]any{"code": tc.code}) {
			t.Errorf("%s: connect_error %+v, want %q with code %q", tc.name, got, tc.message, tc.code)
		}
	}

	alice := js.Connect("alice", url, withToken(hs256(t, testJWTSecret, userClaims("Alice", []string{"r1", "r2"}, time.Hour))))
	bob := js.Connect("bob", url, withToken(hs256(t, testJWTSecret, userClaims("Bob", []string{"r1"}, time.Hour))))
	alice.WaitConnected()
	bob.WaitConnected()
	bob.Emit("join-room", map[string]any{"roomId": "r2", "name": "Alice"})
	bob.Expect(t, "join-error", map[string]any{"roomId": "r2", "code": "forbidden-room"})
	alice.Emit("join-room", map[string]any{"roomId": "r1", "name": "anything"})
	awaitJoin(t, js, url, withToken(hs256(t, testJWTSecret, userClaims("Witness", []string{"r1"}, time.Hour))), alice, "r1")
	bob.Emit("join-room", map[string]any{"roomId": "r1", "name": "Alice"})
	bob.Expect(t, "user-connected", map[string]any{"id": alice.ID(), "name": "Alice"})
	alice.Expect(t, "user-connected", map[string]any{"id": bob.ID(), "name": "Bob"})
	alice.Expect(t, "#rtcio:init-offer", map[string]any{"source": bob.ID()})
}

// TestJWTPublicKeys: RS256 and ES256 tokens are checked against a public
// key file, and a token signed with another algorithm or key is refused
// (an HS256 token "signed" with the public key must never pass).
func TestJWTPublicKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, kc := range []struct {
		name   string
		pub    any
		method jwt.SigningMethod
		priv   any
	}{
		{"RS256", &rsaKey.PublicKey, jwt.SigningMethodRS256, rsaKey},
		{"ES256", &ecKey.PublicKey, jwt.SigningMethodES256, ecKey},
	} {
		t.Run(kc.name, func(t *testing.T) {
			der, err := x509.MarshalPKIXPublicKey(kc.pub)
			if err != nil {
				t.Fatal(err)
			}
			pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			keyFile := filepath.Join(t.TempDir(), "jwt-public.pem")
			if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
				t.Fatal(err)
			}
			src := strings.Replace(string(builtinRules(t)), "\nstores:", "\nauth:\n  jwt:\n    public_key_file: "+keyFile+"\n    issuer: https://auth.example.com\n\nstores:", 1)
			_, url := startRouter(t, []byte(src))
			js := jsclient.Start(t)

			claims := userClaims("Alice", []string{"r1"}, time.Hour)
			claims["iss"] = "https://auth.example.com"
			sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
				s, err := jwt.NewWithClaims(m, c).SignedString(key)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			good := js.Connect("good", url, withToken(sign(kc.method, kc.priv, claims)))
			good.WaitConnected()

			confused := js.Connect("confused", url, withToken(sign(jwt.SigningMethodHS256, pemBytes, claims)))
			if got := confused.WaitConnectError(); got.Message != "unauthorized: invalid token" {
				t.Errorf("HS256 token keyed with the public key: %+v", got)
			}
			other := jwt.MapClaims{}
			for k, v := range claims {
				other[k] = v
			}
			other["iss"] = "https://evil.example.com"
			if got := js.Connect("issuer", url, withToken(sign(kc.method, kc.priv, other))).WaitConnectError(); got.Message != "unauthorized: token issuer or audience not accepted" {
				t.Errorf("wrong issuer: %+v", got)
			}
		})
	}
}

// TestJWTExpiry runs auth.jwt's expiry options with the official client:
// a token without exp is refused unless require_exp is false, and max_age
// refuses a token issued too long ago (or with no iat at all) whatever its
// exp says. Each refusal has its own message and data.code.
func TestJWTExpiry(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	// claims are a user's, plus the given time claims (name, value...).
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "u1", "name": "U1", "rooms": []string{"r1"}}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	sign := func(c jwt.MapClaims) string { return hs256(t, testJWTSecret, c) }
	const (
		noExpiry = "unauthorized: token has no expiry"
		tooOld   = "unauthorized: token too old"
		noIat    = "unauthorized: token has no issue time"
		expired  = "unauthorized: token expired"
		early    = "unauthorized: token not valid yet"
		invalid  = "unauthorized: invalid token"
	)
	type tokenCase struct {
		name, token   string
		message, code string // "" when the token is admitted
	}
	for _, v := range []struct {
		name  string
		jwt   string // lines added under auth.jwt
		cases []tokenCase
	}{
		{"default", "", []tokenCase{
			{"no-exp", sign(claims("iat", at(0))), noExpiry, "token-no-expiry"},
			{"no-exp-no-iat", sign(claims()), noExpiry, "token-no-expiry"},
			// The signature is checked first: a forged token learns nothing.
			{"no-exp-forged", hs256(t, "guessed", claims("iat", at(0))), invalid, "invalid-token"},
			{"null-exp", sign(claims("iat", at(0), "exp", nil)), invalid, "invalid-token"},
			{"exp", sign(claims("iat", at(0), "exp", at(time.Hour))), "", ""},
			{"exp-no-iat", sign(claims("exp", at(time.Hour))), "", ""},
		}},
		{"require_exp-false", "    require_exp: false\n", []tokenCase{
			{"no-exp", sign(claims("iat", at(0))), "", ""},
			{"no-exp-no-iat", sign(claims()), "", ""},
			{"exp", sign(claims("iat", at(0), "exp", at(time.Hour))), "", ""},
			// exp, when present, still counts.
			{"expired", sign(claims("iat", at(-2*time.Hour), "exp", at(-time.Hour))), expired, "token-expired"},
			{"null-exp", sign(claims("iat", at(0), "exp", nil)), invalid, "invalid-token"},
		}},
		{"max_age", "    max_age: 1h\n    leeway: 30s\n", []tokenCase{
			{"fresh", sign(claims("iat", at(-time.Minute), "exp", at(time.Hour))), "", ""},
			{"within-leeway", sign(claims("iat", at(-time.Hour-10*time.Second), "exp", at(time.Hour))), "", ""},
			{"old", sign(claims("iat", at(-2*time.Hour), "exp", at(time.Hour))), tooOld, "token-too-old"},
			{"no-iat", sign(claims("exp", at(time.Hour))), noIat, "token-no-issued-at"},
			{"future-iat", sign(claims("iat", at(10*time.Minute), "exp", at(time.Hour))), early, "token-not-valid-yet"},
			// max_age does not stand in for exp.
			{"fresh-no-exp", sign(claims("iat", at(-time.Minute))), noExpiry, "token-no-expiry"},
			{"old-forged", hs256(t, "guessed", claims("iat", at(-2*time.Hour), "exp", at(time.Hour))), invalid, "invalid-token"},
		}},
		{"max_age-require_exp-false", "    require_exp: false\n    max_age: 1h\n", []tokenCase{
			{"fresh-no-exp", sign(claims("iat", at(-time.Minute))), "", ""},
			{"old-no-exp", sign(claims("iat", at(-2*time.Hour))), tooOld, "token-too-old"},
			{"no-iat-no-exp", sign(claims()), noIat, "token-no-issued-at"},
		}},
	} {
		t.Run(v.name, func(t *testing.T) {
			src := strings.Replace(string(builtinRules(t)), "\nstores:", "\nauth:\n  jwt:\n    secret_env: JWT_SECRET\n"+v.jwt+"\nstores:", 1)
			_, url := startRouterEnv(t, []byte(src), map[string]string{"JWT_SECRET": testJWTSecret})
			js := jsclient.Start(t)
			for _, tc := range v.cases {
				c := js.Connect(tc.name, url, withToken(tc.token))
				if tc.message == "" {
					c.WaitConnected()
					continue
				}
				if got := c.WaitConnectError(); got.Message != tc.message || !jsclient.Equal(got.Data, map[string]any{"code": tc.code}) {
					t.Errorf("%s: connect_error %+v, want %q with code %q", tc.name, got, tc.message, tc.code)
				}
			}
		})
	}
}
