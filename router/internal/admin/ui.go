package admin

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// UIPath is where UIHandler serves the built Admin UI.
const UIPath = "/admin/"

// UIDirEnv names the environment variable that says where
// `npm ci --prefix DIR` installed the UI (DIR, the directory holding
// node_modules), for a router started outside the repository checkout.
// Unset, ./admin and then . are tried, relative to the working directory.
const UIDirEnv = "RTCIO_ADMIN_DIR"

// UIInstallHint is what UIHandler answers (404) while the UI is not
// installed, and what the binary logs at start-up.
const UIInstallHint = "socket.io admin UI not installed: run `npm ci --prefix admin --ignore-scripts` in the rtcio-router checkout (or set " + UIDirEnv + " to the directory holding node_modules)"

var (
	uiDist  = filepath.Join("node_modules", "@socket.io", "admin-ui", "ui", "dist")
	mdiFont = filepath.Join("node_modules", "@mdi", "font")
)

// UIDir returns the installed UI's ui/dist directory, or an error carrying
// UIInstallHint.
func UIDir() (string, error) {
	var prefixes []string
	if d := os.Getenv(UIDirEnv); d != "" {
		prefixes = []string{d}
	} else {
		prefixes = []string{"admin", "."}
	}
	for _, p := range prefixes {
		dir := filepath.Join(p, uiDist)
		if _, err := os.Stat(filepath.Join(dir, "index.html")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New(UIInstallHint)
}

// UIHandler serves the UI of @socket.io/admin-ui 0.5.1 under UIPath from
// the npm install on disk (never a copy in the repository), looked up on
// every request. Two changes make it work offline and open on this server:
// index.html loads the Material Design icons from the installed @mdi/font
// instead of a CDN (and no web font), and a small script fills in this
// server's URL and socket.io path as the login form's defaults. path is
// the socket.io path (server.path).
func UIHandler(path string) http.Handler {
	defaults := []byte(fmt.Sprintf(`(function(){try{var s=window.localStorage;`+
		`if(!s.getItem("server_url"))s.setItem("server_url",location.origin);`+
		`if(!s.getItem("path"))s.setItem("path",%q);}catch(e){}})();`+"\n", strings.TrimSuffix(path, "/")))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dir, err := UIDir()
		if err != nil {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, UIInstallHint, http.StatusNotFound)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		rel := strings.TrimPrefix(r.URL.Path, UIPath)
		switch {
		case rel == "" || rel == "index.html":
			serveIndex(w, r, dir)
		case rel == "rtcio-defaults.js":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			http.ServeContent(w, r, rel, time.Time{}, bytes.NewReader(defaults))
		case strings.HasPrefix(rel, "mdi/"):
			serveUnder(w, r, filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(dir)))), "@mdi", "font"), strings.TrimPrefix(rel, "mdi/"))
		default:
			serveUnder(w, r, dir, rel)
		}
	})
}

// serveUnder serves the file rel under root; anything else is 404.
// http.Dir refuses paths that climb out of root.
func serveUnder(w http.ResponseWriter, r *http.Request, root, rel string) {
	f, err := http.Dir(root).Open("/" + rel)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
}

func serveIndex(w http.ResponseWriter, r *http.Request, dir string) {
	body, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	s := string(body)
	s = strings.Replace(s, `<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto:100,300,400,500,700,900">`, "", 1)
	s = strings.Replace(s, `https://cdn.jsdelivr.net/npm/@mdi/font@latest/css/materialdesignicons.min.css`, `mdi/css/materialdesignicons.min.css`, 1)
	s = strings.Replace(s, `<script src="js/chunk-vendors`, `<script src="rtcio-defaults.js"></script><script src="js/chunk-vendors`, 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, "index.html", time.Time{}, strings.NewReader(s))
}
