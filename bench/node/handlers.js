// The handlers every Node reference server of bench/ runs: the rtc.io
// quickstart server's (the reference the built-in rtcio.yaml reproduces)
// plus the two rtc.io-server's Server registers on every connection (the
// #rtcio:message relay and #rtcio:peer-left), so that Node does the same work
// per event as rtcio-router with its built-in rules. They live here, apart
// from the servers, so that the default server (server.js) and the one on
// uWebSockets.js (server-uws.js) differ only in their transport: any
// difference in the figures is the transport's.
"use strict";

// The seed logs every connection and join; that console I/O would be charged
// to Node in every figure, while the router logs neither at its default level.
// RTCIO_BENCH_LOG=1 restores the seed's logging.
const log = process.env.RTCIO_BENCH_LOG === "1" ? console.log : () => {};

// attach registers the handlers on a socket.io Server.
function attach(server) {
  // Cache of the most recent media state per socket, for late joiners.
  const lastMediaState = new Map();

  server.on("connection", (socket) => {
    log("connected", socket.id);

    // What rtc.io-server adds to every connection (protocol.md): forward the
    // envelope to the socket whose id is its target, as written by the client.
    socket.on("#rtcio:message", (msg) => {
      if (!msg || typeof msg.target !== "string") return;
      socket.to(msg.target).emit("#rtcio:message", msg);
    });
    // ...and tell every room of a leaving socket, while its rooms are still set.
    socket.on("disconnecting", () => {
      socket.rooms.forEach((roomId) => {
        if (roomId === socket.id) return;
        socket.to(roomId).emit("#rtcio:peer-left", { id: socket.id });
      });
    });

    // From here on, the quickstart's handlers.
    socket.on("join-room", ({ roomId, name }) => {
      log("join-room", name, roomId);
      socket.data.name = name;
      // Snapshot existing peers before joining the room.
      const existing = Array.from(server.sockets.adapter.rooms.get(roomId) ?? []);
      socket.join(roomId);
      existing.forEach((id) => {
        const existingSocket = server.sockets.sockets.get(id);
        if (!existingSocket) return;
        socket.emit("user-connected", { id, name: existingSocket.data.name });
        const state = lastMediaState.get(id);
        if (state) {
          socket.emit("media-state", { id, roomId, mic: state.mic, cam: state.cam });
        }
      });
      socket.to(roomId).emit("user-connected", { id: socket.id, name });
      socket.to(roomId).emit("#rtcio:init-offer", { source: socket.id });
    });

    socket.on("media-state", (data) => {
      if (!data?.roomId) return;
      if (typeof data.mic === "boolean" && typeof data.cam === "boolean") {
        lastMediaState.set(socket.id, { mic: data.mic, cam: data.cam });
      }
      socket.to(data.roomId).emit("media-state", data);
    });

    socket.on("stopScreenShare", (data) => {
      if (data.roomId) socket.to(data.roomId).emit("stopScreenShare", data);
    });

    socket.on("disconnecting", () => {
      log("disconnecting", socket.id);
      lastMediaState.delete(socket.id);
      socket.rooms.forEach((roomId) => {
        if (roomId === socket.id) return;
        socket.to(roomId).emit("user-disconnected", { id: socket.id });
      });
    });
  });
}

// port is the listen port: PORT, or the quickstart's 3001.
function port() {
  return process.env.PORT ? parseInt(process.env.PORT, 10) : 3001;
}

module.exports = { attach, port };
