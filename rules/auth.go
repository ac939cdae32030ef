package rules

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Auth is the `auth:` section: who may connect at all. It runs during the
// socket.io handshake, before the socket exists for any rule, so a refused
// client gets a connect_error with a message and never a socket id.
type Auth struct {
	// JWT, when set, requires a signed token on every connection; its
	// claims become socket.claims.
	JWT *JWT
	// Require are conditions on the handshake (socket.auth, socket.query,
	// socket.claims) that must all hold, checked after the token.
	Require []*Requirement
}

// JWT says where a connection's token is and how it is verified. Exactly
// one of Secret (HMAC: HS256, HS384, HS512) and PublicKey (RSA: RS*/PS*,
// ECDSA: ES*, Ed25519: EdDSA) is set, and only the algorithms of that key
// are accepted, so a token cannot pick a weaker check for itself.
type JWT struct {
	Token         *Expr  // where the token is; default socket.auth.token
	Secret        []byte // from the environment variable SecretEnv
	SecretEnv     string
	PublicKey     crypto.PublicKey // from PublicKeyFile, read at load
	PublicKeyFile string
	Issuer        string        // required iss, "" for any
	Audience      string        // required in aud, "" for any
	Leeway        time.Duration // clock skew allowed on exp, nbf, iat and MaxAge
	// ExpOptional is `require_exp: false`: a token without exp is
	// admitted. It is off by default, so the zero JWT refuses tokens that
	// never expire: a leaked one would otherwise open the server forever.
	// It is for tokens issued by systems that cannot set exp.
	ExpOptional bool
	// MaxAge is `max_age`: when not 0, a token must carry iat and be at
	// most this old (plus Leeway), whatever its exp says, so a token with
	// a far-off exp cannot be replayed for longer than the operator wants.
	MaxAge time.Duration
	Pos    Pos
}

// Methods are the JWT "alg" values the key can verify.
func (j *JWT) Methods() []string {
	switch j.PublicKey.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		return []string{"ES256", "ES384", "ES512"}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return []string{"HS256", "HS384", "HS512"}
}

// Key is what verifies a signature: the secret or the public key.
func (j *JWT) Key() any {
	if j.PublicKey != nil {
		return j.PublicKey
	}
	return j.Secret
}

// Requirement is one condition of auth.require; when it is false the
// connection is refused with Message, and Data when set.
type Requirement struct {
	Cond    *Expr
	Message string
	Data    *Template
}

// authFields are the keys of auth:, read by auth.
var authFields = []field{
	{"jwt", "Require a signed JWT on every connection (socket.io `auth`); its claims become `socket.claims`.",
		object(jwtFields).with(
			kw{"anyOf", []schema{obj("required", []string{"secret_env"}), obj("required", []string{"public_key_file"})}},
			kw{"examples", []any{map[string]any{"secret_env": "JWT_SECRET"}}}), false},
	{"require", "Conditions on the handshake (`socket.auth`, `socket.query`, `socket.claims`) that must all hold, else the connection is refused with `message`.",
		obj("type", "array", "items", object(requireFields)), false},
}

var jwtFields = []field{
	{"token", "Where the token is, an expression; default `socket.auth.token` (`io(url, {auth: {token}})`).",
		exprValue("socket.auth.token", "socket.query.token"), false},
	{"secret_env", "The environment variable holding the HMAC secret (HS256/384/512). One of `secret_env` and `public_key_file`.",
		obj("type", "string", "examples", []any{"JWT_SECRET"}), false},
	{"public_key_file", "A PEM public key (RSA, ECDSA or Ed25519; RS*/PS*, ES*, EdDSA), relative to this file; read at load and on every reload.",
		obj("type", "string", "examples", []any{"jwt-public.pem"}), false},
	{"issuer", "The required `iss` claim; default any.", obj("type", "string", "examples", []any{"https://auth.example.com"}), false},
	{"audience", "A value the `aud` claim must contain; default any.", obj("type", "string", "examples", []any{"rtcio"}), false},
	{"leeway", "Clock skew allowed when checking `exp`, `nbf`, `iat` and `max_age`; default `0s`.", durationValue("30s"), false},
	{"require_exp", "Refuse a token without an `exp` claim (`token-no-expiry`); default `true`. Set `false` only for tokens issued by systems that cannot set `exp`: such a token never expires.",
		obj("type", "boolean", "default", true), false},
	{"max_age", "The oldest token accepted, by its `iat` claim, a positive duration such as `24h`: a token issued longer ago (plus `leeway`) is refused (`token-too-old`), and so is one without `iat` (`token-no-issued-at`); default none.",
		obj("type", "string", "pattern", durationPattern, "examples", []any{"24h", "1h"}), false},
}

var requireFields = []field{
	{"check", "The condition; when it is false the connection is refused.", condValue(`socket.claims.role in ["host", "guest"]`), true},
	{"message", "The connect_error message the client sees (`err.message`).", obj("type", "string", "examples", []any{"forbidden"}), true},
	{"data", "Extra detail for the client (`err.data`), a template.", templateValue(map[string]any{"code": "forbidden"}), false},
}

var (
	authKeys    = keysOf(authFields)
	jwtKeys     = keysOf(jwtFields)
	requireKeys = keysOf(requireFields)
)

func (l *loader) auth(n *yaml.Node) {
	for _, p := range l.pairs(n, "auth") {
		switch p.key.Value {
		case "jwt":
			l.set.Auth.JWT = l.jwt(p.val)
		case "require":
			if p.val.Kind != yaml.SequenceNode {
				l.errf(p.val, "auth.require must be a list of {check, message}, got %s", kindName(p.val))
				continue
			}
			for _, item := range p.val.Content {
				if r := l.requirement(resolve(item)); r != nil {
					l.set.Auth.Require = append(l.set.Auth.Require, r)
				}
			}
		default:
			l.unknown(p.key, "auth", authKeys)
		}
	}
}

func (l *loader) jwt(n *yaml.Node) *JWT {
	j := &JWT{Pos: posOf(n)}
	var tokenNode *yaml.Node
	for _, p := range l.pairs(n, "auth.jwt") {
		what := "auth.jwt." + p.key.Value
		switch p.key.Value {
		case "token":
			tokenNode = p.val
		case "secret_env":
			if name, ok := l.str(p.val, what); ok {
				j.SecretEnv = name
				j.Secret = []byte(l.set.Environ[name])
				if len(j.Secret) == 0 {
					l.errf(p.val, "%s: the environment variable %s is not set or empty, so every token would be refused", what, name)
				}
			}
		case "public_key_file":
			if file, ok := l.str(p.val, what); ok {
				j.PublicKeyFile = file
				if !filepath.IsAbs(file) {
					file = filepath.Join(filepath.Dir(l.file), file)
				}
				key, err := readPublicKey(file)
				if err != nil {
					l.errf(p.val, "%s: %v", what, err)
				}
				j.PublicKey = key
			}
		case "issuer":
			j.Issuer, _ = l.str(p.val, what)
		case "audience":
			j.Audience, _ = l.str(p.val, what)
		case "leeway":
			j.Leeway = l.durationOrZero(p.val, what)
		case "require_exp":
			// Opt out only on a YAML false (false, False, FALSE):
			// boolean reports a value that is no bool, but reads True
			// and TRUE as false, and a misread here would admit tokens
			// that never expire.
			l.boolean(p.val, what)
			j.ExpOptional = p.val.Tag == "!!bool" && strings.EqualFold(p.val.Value, "false")
		case "max_age":
			// duration refuses 0 and negative ages at their position:
			// such a max_age would refuse every token.
			j.MaxAge = l.duration(p.val, what)
		default:
			l.unknown(p.key, "auth.jwt", jwtKeys)
		}
	}
	if tokenNode != nil {
		j.Token = l.compile(tokenNode, "auth.jwt.token", scope{}, false)
	} else {
		j.Token = l.compileSrc(n, "socket.auth?.token", "auth.jwt.token")
	}
	switch {
	case j.SecretEnv == "" && j.PublicKeyFile == "":
		l.errf(n, "auth.jwt needs secret_env (HMAC) or public_key_file (RSA, ECDSA, Ed25519)")
	case j.SecretEnv != "" && j.PublicKeyFile != "":
		l.errf(n, "auth.jwt: secret_env and public_key_file contradict each other: a token is checked with one key")
	}
	return j
}

// compileSrc compiles a default expression, placed at n for messages.
func (l *loader) compileSrc(n *yaml.Node, src, what string) *Expr {
	return l.compile(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: src, Line: n.Line, Column: n.Column}, what, scope{}, false)
}

// readPublicKey reads the first PEM block of file as a PKIX public key, or
// an RSA PKCS#1 one.
func readPublicKey(file string) (crypto.PublicKey, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(src)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM block", file)
	}
	switch block.Type {
	case "PUBLIC KEY":
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		switch key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			return key, nil
		}
		return nil, fmt.Errorf("%s: unsupported key type %T", file, key)
	case "RSA PUBLIC KEY":
		key, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("%s: a %q PEM block is not a public key (never configure the private key here)", file, block.Type)
}

func (l *loader) requirement(n *yaml.Node) *Requirement {
	r := &Requirement{}
	for _, p := range l.pairs(n, "an auth.require item") {
		switch p.key.Value {
		case "check":
			r.Cond = l.compileBool(p.val, "auth.require.check", scope{})
		case "message":
			r.Message, _ = l.str(p.val, "auth.require.message")
		case "data":
			r.Data = l.template(p.val, "auth.require.data", scope{}, 0)
		default:
			l.unknown(p.key, "auth.require", requireKeys)
		}
	}
	if n.Kind == yaml.MappingNode {
		for _, k := range []string{"check", "message"} {
			if !hasKey(n, k) {
				l.errf(n, "auth.require: missing field %q", k)
			}
		}
	}
	if r.Cond == nil || r.Message == "" {
		return nil
	}
	return r
}

// describe is the auth line of Summary.
func (a Auth) describe() string {
	var parts []string
	if j := a.JWT; j != nil {
		key := "secret $" + j.SecretEnv
		if j.PublicKeyFile != "" {
			key = "public key " + j.PublicKeyFile
		}
		var checks string
		if j.ExpOptional {
			checks += ", exp optional"
		}
		if j.MaxAge > 0 {
			checks += ", max age " + j.MaxAge.String()
		}
		parts = append(parts, fmt.Sprintf("jwt (%s: %s%s) from %s", key, strings.Join(j.Methods(), ","), checks, j.Token.Src))
	}
	if n := len(a.Require); n > 0 {
		parts = append(parts, fmt.Sprintf("%d requirement(s)", n))
	}
	return strings.Join(parts, "; ")
}
