package demo

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Path is where Mount serves Handler, and so the URL path of the page (the
// --demo log line and the tests build the page URL from it).
const Path = "/demo/"

// ClientBundleEnv names the environment variable that says where
// `npm ci --prefix DIR` installed socket.io-client (DIR, the directory holding
// node_modules), for a router started outside the repository checkout. Unset,
// ./demo and then . are tried, relative to the working directory.
const ClientBundleEnv = "RTCIO_DEMO_DIR"

// InstallHint is the one line the page's script URL answers with (404) while
// the socket.io client is not installed, and that the --demo log repeats.
const InstallHint = "socket.io client not installed: run `npm ci --prefix demo` in the rtcio-router checkout (or set " + ClientBundleEnv + " to the directory holding node_modules)"

// clientDist is where npm puts the browser bundles, under the prefix.
var clientDist = filepath.Join("node_modules", "socket.io-client", "dist")

//go:embed web
var web embed.FS

// contentSecurityPolicy keeps the page to its own origin: scripts, styles
// and the socket.io connection (HTTP and WebSocket) come from the router;
// remote media arrive as MediaStreams, which need no source.
const contentSecurityPolicy = "default-src 'self'; connect-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; media-src 'self' blob: mediastream:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the demo page under Path: index.html, app.js and style.css
// from the binary, and socket.io.min.js (with its source map) from the npm
// install on disk, so the official client is used without being copied into
// the repository. Anything else under Path is 404.
func Handler() http.Handler {
	mux := http.NewServeMux()
	for route, file := range map[string]string{
		Path + "{$}":       "index.html",
		Path + "app.js":    "app.js",
		Path + "style.css": "style.css",
	} {
		body, err := fs.ReadFile(web, "web/"+file)
		if err != nil {
			panic(fmt.Sprintf("demo: embedded %s: %v", file, err)) // a build defect, caught by any test
		}
		mux.Handle("GET "+route, staticFile(file, body))
	}
	mux.HandleFunc("GET "+Path+"socket.io.min.js", serveClient("socket.io.min.js"))
	mux.HandleFunc("GET "+Path+"socket.io.min.js.map", serveClient("socket.io.min.js.map"))
	return mux
}

// Mount serves the demo page under Path and every other request through
// next (the router). The binary mounts it for --demo; the router itself
// knows nothing of the page, so a production server cannot serve it by
// accident.
func Mount(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Path, Handler())
	mux.Handle("/", next)
	return mux
}

// staticFile serves one embedded file. no-cache makes browsers revalidate, so
// a rebuilt binary's page is picked up at once; the ETag keeps that cheap.
func staticFile(name string, body []byte) http.Handler {
	sum := fnv.New64a()
	sum.Write(body)
	etag := fmt.Sprintf(`"%x"`, sum.Sum64())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if name == "index.html" {
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("Referrer-Policy", "no-referrer")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	})
}

// serveClient serves one file of socket.io-client's dist directory, looked
// up on every request, so `npm ci` run after the router started takes effect
// without a restart.
func serveClient(file string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dir, err := clientDir()
		if err != nil {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, InstallHint, http.StatusNotFound)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.ServeFile(w, r, filepath.Join(dir, file))
	}
}

// ClientBundle returns the path of the installed socket.io.min.js, or an
// error carrying InstallHint, so the binary can warn at start-up instead of
// leaving the user with a blank page.
func ClientBundle() (string, error) {
	dir, err := clientDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "socket.io.min.js"), nil
}

// clientDir finds socket.io-client's dist directory: under $RTCIO_DEMO_DIR
// when set, else under ./demo or . (the repository root or demo/ itself, as
// `go run` and `go test` use them).
func clientDir() (string, error) {
	prefixes := []string{"demo", "."}
	if p := os.Getenv(ClientBundleEnv); p != "" {
		prefixes = []string{p}
	}
	for _, p := range prefixes {
		dir := filepath.Join(p, clientDist)
		if st, err := os.Stat(filepath.Join(dir, "socket.io.min.js")); err == nil && st.Mode().IsRegular() {
			return dir, nil
		}
	}
	return "", errors.New(InstallHint)
}
