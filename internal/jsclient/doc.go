// Package jsclient lets Go tests drive the official JavaScript socket.io-client
// (pinned in node/package.json) against a server started by the test.
//
// Our server is built on a Go port of socket.io. Its own Go client would share
// the port's assumptions and bugs, so only the real JS client, the one browsers
// run, can tell us whether the wire protocol, acks, transports and upgrades
// actually interoperate. One Node process (node/driver.mjs) hosts any number of
// named clients and speaks newline-delimited JSON over stdin/stdout; this
// package wraps that in a small API that fails tests with readable messages and
// never waits without a timeout.
//
// Start installs the npm dependencies on first use (npm ci, under a file lock
// so parallel test binaries do not race), so node and npm must be on PATH.
//
// Helpers that fail the test call Fatalf on the testing.TB they are bound to
// (the one given to Start, or to Client.WithT / Expect). The testing package
// only allows that from the test's own goroutine; from other goroutines use
// the non-failing forms (TryNext, TryEmit, EmitWithAckTimeout).
package jsclient
