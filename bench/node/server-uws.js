// The same Node reference server as server.js (the handlers in handlers.js),
// with socket.io attached to uWebSockets.js (io.attachApp) instead of Node's
// http module and ws: the fastest transport socket.io 4 offers, so the
// router is compared with the best a Node deployment can do, not only the
// default. uWebSockets.js comes from @trufflesuite/uws-js-unofficial (the
// upstream package is not on npm), version pinned in package.json.
"use strict";

let uws;
try {
  uws = require("@trufflesuite/uws-js-unofficial");
} catch (err) {
  // loadgen shows this line when the server does not come up.
  console.error(`server-uws.js: uWebSockets.js did not load (${err.message}); run npm ci --prefix bench/node`);
  process.exit(3);
}
const { Server } = require("socket.io");
const { attach, port } = require("./handlers");

const app = uws.App();
const server = new Server({ cors: { origin: "*" } });
server.attachApp(app);
attach(server);
app.listen("127.0.0.1", port(), (token) => {
  if (!token) {
    console.error(`server-uws.js: cannot listen on 127.0.0.1:${port()}`);
    process.exit(1);
  }
  console.log(`rtc.io-server (uWebSockets.js) listening on ${port()}`);
});
