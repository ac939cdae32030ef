package router

import (
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// authenticate applies the auth: section to a handshake and returns the
// verified token claims. It reads no router state, so it runs outside the
// state lock, on the handshake's goroutine.
func (r *Router) authenticate(set *rules.Set, id string, auth, query map[string]any) (map[string]any, *sio.Refusal) {
	a := &set.Auth
	if a.JWT == nil && len(a.Require) == 0 {
		return nil, nil
	}
	info := &rules.SocketInfo{ID: id, Data: map[string]any{}, Rooms: []string{}, Auth: auth, Query: query, Claims: map[string]any{}}
	// No Stores: the token is read outside the state lock, and a
	// handshake's expressions see no store entries.
	env := &rules.Env{Args: []any{}, Event: rules.HookConnect, Socket: info, Environ: set.Environ}
	// Expressions may ask about the server (room_size, connected): they
	// read state under the read lock, each handshake with a VM of its own.
	x := &run{r: r, env: env, evaluator: &rules.Evaluator{}}
	if a.JWT != nil {
		claims, ref := r.verifyToken(a.JWT, x)
		if ref != nil {
			return nil, ref
		}
		info.Claims = claims
	}
	if len(a.Require) == 0 {
		return info.Claims, nil
	}
	r.st.mu.RLock()
	defer r.st.mu.RUnlock()
	for _, req := range a.Require {
		ok, err := x.boolean(req.Cond)
		if ok && err == nil {
			continue
		}
		if err != nil {
			r.log.Debug("auth.require failed to run", "socket_id", id, "at", at(r, req.Cond), "err", err)
		}
		ref := &sio.Refusal{Message: req.Message}
		if req.Data != nil {
			if v, err := x.build(req.Data); err == nil {
				ref.Data = jsonSafe(v)
			}
		}
		return nil, ref
	}
	return info.Claims, nil
}

// The connect_error messages of a refused token. Clients branch on them
// (err.message), so they are stable and name the problem, never the secret.
const (
	msgNoToken      = "unauthorized: no token"
	msgTokenExpired = "unauthorized: token expired"
	msgTokenEarly   = "unauthorized: token not valid yet"
	msgTokenClaims  = "unauthorized: token issuer or audience not accepted"
	msgTokenBad     = "unauthorized: invalid token"
	// A token that never expires (auth.jwt.require_exp), and one older
	// than auth.jwt.max_age or whose age is unknown: the issuer must send
	// exp and iat, or the operator relax the config.
	msgTokenNoExpiry   = "unauthorized: token has no expiry"
	msgTokenTooOld     = "unauthorized: token too old"
	msgTokenNoIssuedAt = "unauthorized: token has no issue time"
)

// verifyToken finds the token with j.Token and checks its signature, its
// algorithm against the configured key, its time claims (exp required
// unless j.ExpOptional, iat and its age when j.MaxAge is set) and its
// issuer and audience.
func (r *Router) verifyToken(j *rules.JWT, x *run) (map[string]any, *sio.Refusal) {
	r.st.mu.RLock()
	v, err := x.eval(j.Token)
	r.st.mu.RUnlock()
	token, _ := v.(string)
	if err != nil || token == "" {
		return nil, &sio.Refusal{Message: msgNoToken, Data: map[string]any{"code": "no-token"}}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(j.Methods()),
		jwt.WithLeeway(j.Leeway),
		jwt.WithTimeFunc(r.st.now),
		jwt.WithIssuedAt(),
	}
	if !j.ExpOptional {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if j.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(j.Issuer))
	}
	if j.Audience != "" {
		opts = append(opts, jwt.WithAudience(j.Audience))
	}
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(opts...).ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return j.Key(), nil })
	if err == nil {
		if ref := r.checkAge(j, claims, x); ref != nil {
			return nil, ref
		}
		return map[string]any(claims), nil
	}
	ref := &sio.Refusal{Message: msgTokenBad, Data: map[string]any{"code": "invalid-token"}}
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		ref = &sio.Refusal{Message: msgTokenExpired, Data: map[string]any{"code": "token-expired"}}
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && !hasExpiry(claims):
		// WithExpirationRequired says only "a required claim is
		// missing"; iss and aud can be required too, so ask the claims
		// which one. The signature was verified before the claims.
		ref = &sio.Refusal{Message: msgTokenNoExpiry, Data: map[string]any{"code": "token-no-expiry"}}
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		ref = &sio.Refusal{Message: msgTokenEarly, Data: map[string]any{"code": "token-not-valid-yet"}}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
		ref = &sio.Refusal{Message: msgTokenClaims, Data: map[string]any{"code": "token-not-accepted"}}
	}
	r.log.Debug("connection refused: token", "socket_id", x.env.Socket.ID, "reason", firstLineOf(err.Error()))
	return nil, ref
}

// hasExpiry reports whether claims carry an exp claim of any type.
func hasExpiry(claims jwt.MapClaims) bool {
	_, ok := claims["exp"]
	return ok
}

// checkAge applies auth.jwt.max_age to a verified token: it must carry
// iat, and iat must lie within MaxAge (plus Leeway) of now. golang-jwt has
// no such option; WithIssuedAt has already refused an iat in the future and
// one that is not a number.
func (r *Router) checkAge(j *rules.JWT, claims jwt.MapClaims, x *run) *sio.Refusal {
	if j.MaxAge <= 0 {
		return nil
	}
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		r.log.Debug("connection refused: token", "socket_id", x.env.Socket.ID, "reason", "no iat claim, and auth.jwt.max_age is set")
		return &sio.Refusal{Message: msgTokenNoIssuedAt, Data: map[string]any{"code": "token-no-issued-at"}}
	}
	if age := r.st.now().Sub(iat.Time); age > j.MaxAge+j.Leeway {
		r.log.Debug("connection refused: token", "socket_id", x.env.Socket.ID, "reason", "token too old", "age", age.Round(time.Second).String(), "max_age", j.MaxAge.String())
		return &sio.Refusal{Message: msgTokenTooOld, Data: map[string]any{"code": "token-too-old"}}
	}
	return nil
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// verifiedClaims marks the claims Admit returned for a socket, so
// nothing else can pass for them.
type verifiedClaims map[string]any
