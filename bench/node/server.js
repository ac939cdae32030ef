// The Node reference server for bench/: the rtc.io quickstart server on plain
// socket.io 4 with its default transport (Node's http module and the ws
// package), the handlers in handlers.js. It exists only as the comparison
// baseline; rtcio-router is the product.
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { attach, port } = require("./handlers");

// Loopback only, as every server of bench/: a wildcard listener would also
// collide with the generator's own ports on 127.0.0.2 and up (the scale run).
const httpServer = http.createServer();
const server = new Server(httpServer, { cors: { origin: "*" } });
attach(server);
httpServer.listen(port(), "127.0.0.1", () => console.log(`rtc.io-server listening on ${port()}`));
