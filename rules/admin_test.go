package rules

import (
	"testing"
)

// A bcrypt hash of "secret" (cost 4, fast for tests).
const testAdminHash = "$2a$04$7u.O0qbFkb6rPTx6jR2YE.eWfcV65fNUXrbd81Xf2apAi/P7AL3d6"

func TestAdminSection(t *testing.T) {
	def := Admin{Auth: AdminAuthBasic, Username: DefaultAdminUsername, UI: true}
	for _, tc := range []struct {
		name, yaml string
		want       Admin
		err        string // substring of the error, with its position
	}{
		{"absent", "", def, ""},
		{"basic", "admin: {enabled: true, password_hash: \"" + testAdminHash + "\"}\n",
			Admin{Enabled: true, Auth: AdminAuthBasic, Username: "admin", PasswordHash: testAdminHash, UI: true}, ""},
		{"none, read-only, no ui", "admin: {enabled: true, auth: none, readonly: true, ui: false, server_id: n1, username: root}\n",
			Admin{Enabled: true, Auth: AdminAuthNone, Username: "root", ReadOnly: true, ServerID: "n1"}, ""},
		{"disabled without password", "admin: {enabled: false}\n", def, ""},
		{"no password", "admin:\n  enabled: true\n", Admin{}, "t.yaml:2:3: admin is enabled without a password: set admin.password_hash"},
		{"not a hash", "admin: {enabled: true, password_hash: secret}\n", Admin{}, "t.yaml:1:39: admin.password_hash must be a bcrypt hash"},
		{"hash with auth none", "admin: {enabled: true, auth: none, password_hash: \"" + testAdminHash + "\"}\n", Admin{}, "t.yaml:1:51: admin.password_hash is set but admin.auth is none"},
		{"bad auth", "admin: {enabled: true, auth: jwt}\n", Admin{}, "t.yaml:1:30: admin.auth must be \"basic\" or \"none\", got \"jwt\""},
		{"unknown key", "admin: {enable: true}\n", Admin{}, "t.yaml:1:9: admin: unknown field \"enable\" (did you mean \"enabled\"?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := parseSection(t, tc.yaml, tc.err)
			if set == nil {
				return
			}
			if set.Admin != tc.want {
				t.Fatalf("admin %+v, want %+v", set.Admin, tc.want)
			}
		})
	}
	a := Admin{Enabled: true, Auth: AdminAuthNone}
	b := a
	b.ReadOnly = true
	if a.FixedChanges(a) != nil || a.FixedChanges(b) == nil {
		t.Fatal("FixedChanges must refuse a change of admin, and only that")
	}
}
