package rules

import (
	"fmt"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// Admin is the admin: section: the server side of the socket.io Admin UI
// (@socket.io/admin-ui 0.5.1's protocol on the /admin namespace) and, with
// UI set, the built UI served under /admin/. Off by default. Every field
// shapes what the running server exposes, so a reload may not change it.
type Admin struct {
	// Enabled turns the /admin namespace (and the UI) on.
	Enabled bool
	// Auth is AdminAuthBasic (the default: Username and PasswordHash
	// required) or AdminAuthNone, for a router on a developer's machine.
	Auth string
	// Username is what the UI's login form must send; default "admin".
	Username string
	// PasswordHash is the bcrypt hash of the password ($2a$, $2b$ or $2y$);
	// the password itself is never in the file.
	PasswordHash string
	// ReadOnly hides the UI's commands (join, leave, disconnect, emit) and
	// refuses them.
	ReadOnly bool
	// UI serves the built Admin UI under /admin/; default true.
	UI bool
	// ServerID names this node in the UI's Servers page; default the
	// host name.
	ServerID string
}

// The values of admin.auth.
const (
	AdminAuthBasic = "basic"
	AdminAuthNone  = "none"
)

// DefaultAdminUsername is admin.username when the file leaves it out.
const DefaultAdminUsername = "admin"

// adminFields are the keys of admin:, read by admin.
var adminFields = []field{
	{"enabled", "Serve the socket.io Admin UI protocol on the `/admin` namespace (and the UI under `/admin/`); default `false`.",
		obj("type", "boolean", "default", false), false},
	{"auth", "`basic` (the default): the UI logs in with `username` and the password whose bcrypt hash is `password_hash`; `none`: anyone who reaches the port may administer it, for local use only.",
		obj("type", "string", "enum", []any{AdminAuthBasic, AdminAuthNone}, "default", AdminAuthBasic), false},
	{"username", "The login name the UI must send; default `admin`.",
		obj("type", "string", "minLength", 1, "default", DefaultAdminUsername), false},
	{"password_hash", "The bcrypt hash of the UI's password (`$2a$`, `$2b$` or `$2y$`, e.g. from `htpasswd -bnBC 10 \"\" PASSWORD | tr -d ':\\n'`); required with `auth: basic`.",
		obj("type", "string", "pattern", `^\$2[aby]?\$`, "examples", []any{"$2a$04$7u.O0qbFkb6rPTx6jR2YE.eWfcV65fNUXrbd81Xf2apAi/P7AL3d6"}), false},
	{"readonly", "Hide and refuse the UI's commands (join, leave, disconnect, emit); default `false`.",
		obj("type", "boolean", "default", false), false},
	{"ui", "Serve the built UI (from `npm ci --prefix admin`) under `/admin/`; default `true`. Off, the protocol is still served for a UI hosted elsewhere (e.g. admin.socket.io).",
		obj("type", "boolean", "default", true), false},
	{"server_id", "This node's name in the UI's Servers page; default the host name.",
		obj("type", "string", "examples", []any{"node-1"}), false},
}

// adminKeys are the names in adminFields, for "unknown field" hints.
var adminKeys = keysOf(adminFields)

func (l *loader) admin(n *yaml.Node) {
	a := &l.set.Admin
	var hashNode *yaml.Node
	for _, p := range l.pairs(n, "admin") {
		switch p.key.Value {
		case "enabled":
			a.Enabled = l.boolean(p.val, "admin.enabled")
		case "auth":
			if v, ok := l.str(p.val, "admin.auth"); ok {
				if v != AdminAuthBasic && v != AdminAuthNone {
					l.errf(p.val, "admin.auth must be %q or %q, got %q", AdminAuthBasic, AdminAuthNone, v)
				}
				a.Auth = v
			}
		case "username":
			if v, ok := l.str(p.val, "admin.username"); ok {
				if v == "" {
					l.errf(p.val, "admin.username must not be empty")
				}
				a.Username = v
			}
		case "password_hash":
			if v, ok := l.str(p.val, "admin.password_hash"); ok {
				if _, err := bcrypt.Cost([]byte(v)); err != nil {
					l.errf(p.val, "admin.password_hash must be a bcrypt hash ($2a$10$...): %v", err)
				}
				a.PasswordHash, hashNode = v, p.val
			}
		case "readonly":
			a.ReadOnly = l.boolean(p.val, "admin.readonly")
		case "ui":
			a.UI = l.boolean(p.val, "admin.ui")
		case "server_id":
			a.ServerID, _ = l.str(p.val, "admin.server_id")
		default:
			l.unknown(p.key, "admin", adminKeys)
		}
	}
	if !a.Enabled || n.Kind != yaml.MappingNode {
		return
	}
	switch {
	case a.Auth == AdminAuthBasic && a.PasswordHash == "":
		l.errf(n, "admin is enabled without a password: set admin.password_hash to a bcrypt hash, or admin.auth: none for local use only")
	case a.Auth == AdminAuthNone && hashNode != nil:
		l.errf(hashNode, "admin.password_hash is set but admin.auth is none: remove one of them")
	}
}

// FixedChanges returns an error when next's admin section differs from
// a's: the /admin namespace, its credentials and the UI route are set up
// when the server starts.
func (a Admin) FixedChanges(next Admin) error {
	if a == next {
		return nil
	}
	return fmt.Errorf("reload not supported for admin: the admin: section changed (restart to change it)")
}
