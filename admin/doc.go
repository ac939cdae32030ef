// Package admin holds the npm install of the socket.io Admin UI that the
// router serves under /admin/ when admin.enabled (package.json and its
// lockfile: `npm ci --prefix admin --ignore-scripts`), and its browser
// end-to-end test. The Go side of the UI's protocol is
// router/internal/admin; nothing here is imported.
package admin
