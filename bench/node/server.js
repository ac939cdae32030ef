// The Node reference server for bench/: the rtc.io quickstart server on plain
// socket.io 4 with its default transport (Node's http module and the ws
// package), the handlers in handlers.js. It exists only as the comparison
// baseline; rtcio-router is the product.
"use strict";

const { Server } = require("socket.io");
const { attach, port } = require("./handlers");

const server = new Server({ cors: { origin: "*" } });
attach(server);
server.listen(port());
console.log(`rtc.io-server listening on ${port()}`);
