package rules

import (
	"strings"
	"testing"
	"time"
)

// jwtSet loads a config whose auth.jwt is the flow mapping jwt (with
// secret_env JWT_SECRET set), returning its JWT or the load error.
func jwtSet(t *testing.T, jwt string) (*JWT, error) {
	t.Helper()
	src := "auth:\n  jwt: {secret_env: JWT_SECRET" + jwt + "}\nrules: []\n"
	set, err := Parse("t.yaml", []byte(src), Options{Environ: map[string]string{"JWT_SECRET": "s3cret"}})
	if err != nil {
		return nil, err
	}
	return set.Auth.JWT, nil
}

// TestJWTExpiryOptions: exp is required unless require_exp is a YAML
// false, and max_age is read as a duration. A true spelled True or TRUE
// must keep exp required: a misread would admit tokens that never expire.
func TestJWTExpiryOptions(t *testing.T) {
	for _, tc := range []struct {
		jwt         string
		expOptional bool
		maxAge      time.Duration
	}{
		{"", false, 0},
		{", require_exp: true", false, 0},
		{", require_exp: True", false, 0},
		{", require_exp: TRUE", false, 0},
		{", require_exp: false", true, 0},
		{", require_exp: False", true, 0},
		{", max_age: 24h", false, 24 * time.Hour},
		{", require_exp: false, max_age: 90m", true, 90 * time.Minute},
		{", leeway: 0s", false, 0}, // the documented default, written out
	} {
		j, err := jwtSet(t, tc.jwt)
		if err != nil {
			t.Errorf("%q: %v", tc.jwt, err)
			continue
		}
		if j.ExpOptional != tc.expOptional || j.MaxAge != tc.maxAge {
			t.Errorf("%q: ExpOptional %v, MaxAge %v; want %v, %v", tc.jwt, j.ExpOptional, j.MaxAge, tc.expOptional, tc.maxAge)
		}
	}
}

// TestJWTExpiryOptionsRefused: a max_age of zero or less (it would refuse
// every token) and a require_exp that is no bool are positioned errors.
func TestJWTExpiryOptionsRefused(t *testing.T) {
	for _, tc := range []struct{ jwt, want string }{
		{", max_age: 0s", `t.yaml:2:42: auth.jwt.max_age must be a positive duration such as 25s, got "0s"`},
		{", max_age: -24h", `t.yaml:2:42: auth.jwt.max_age must be a positive duration such as 25s, got "-24h"`},
		{", max_age: 0", `t.yaml:2:42: auth.jwt.max_age must be a positive duration such as 25s, got "0"`},
		{", max_age: forever", `t.yaml:2:42: auth.jwt.max_age must be a positive duration such as 25s, got "forever"`},
		{", require_exp: no", `t.yaml:2:46: auth.jwt.require_exp must be true or false, got "no"`},
	} {
		_, err := jwtSet(t, tc.jwt)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\ngot  %v\nwant %s", tc.jwt, err, tc.want)
		}
	}
}

// TestJWTExpirySchema: the schema refuses what the decoder refuses about
// require_exp and max_age, so editors flag it while typing. (The schema's
// duration pattern cannot tell 0s from 1s; TestJWTExpiryOptionsRefused
// covers the decoder there.)
func TestJWTExpirySchema(t *testing.T) {
	sch := compiledSchema(t)
	for _, jwt := range []string{", require_exp: no", ", require_exp: 'false'", ", max_age: forever", ", max_age: -24h", ", max_age: 86400"} {
		src := "auth:\n  jwt: {secret_env: JWT_SECRET" + jwt + "}\nrules: []\n"
		if err := sch.Validate(yamlInstance(t, []byte(src))); err == nil {
			t.Errorf("the schema accepts:\n%s", src)
		}
		if _, err := jwtSet(t, jwt); err == nil {
			t.Errorf("the decoder accepts (the case is wrong): %q", jwt)
		}
	}
}

// TestJWTExpirySummary: the summary says when a token may lack exp and how
// old it may be.
func TestJWTExpirySummary(t *testing.T) {
	src := "auth:\n  jwt: {secret_env: JWT_SECRET, require_exp: false, max_age: 24h}\nrules: []\n"
	set, err := Parse("t.yaml", []byte(src), Options{Environ: map[string]string{"JWT_SECRET": "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(set.Summary(), "\n")
	if want := "jwt (secret $JWT_SECRET: HS256,HS384,HS512, exp optional, max age 24h0m0s) from socket.auth?.token"; !strings.Contains(got, want) {
		t.Errorf("summary:\n%s\nwant a line with %q", got, want)
	}
}
