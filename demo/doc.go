// Package demo serves a one-page video-call client for the router, so a newcomer
// can see the reference server's promise kept within a minute: start
// `rtcio-router --demo`, open the printed URL in two tabs, and the tabs hold a
// live WebRTC call signaled through this server.
//
// The page is plain JavaScript, HTML and CSS with no build step, embedded in the
// binary, and it speaks the rtc.io protocol the way any rtc.io client does
// (join-room, presence, #rtcio:init-offer, #rtcio:message envelopes, perfect
// negotiation, media-state, stopScreenShare, #rtcio:peer-left), so it doubles as
// a readable reference client and as the page the browser end-to-end test drives
// (e2e_test.go: two and three headless Chromium pages, over WebSocket and over
// long-polling).
//
// The socket.io browser client is not copied into the repository or the binary:
// it is the official socket.io-client package, pinned in package.json and
// installed with `npm ci --prefix demo`, and Handler serves its dist bundle from
// disk at run time (see ClientBundleEnv). Without it the page's script URL
// answers 404 with the command that installs it.
package demo
