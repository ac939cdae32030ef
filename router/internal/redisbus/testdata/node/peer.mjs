// The Node side of redisbus's interoperability tests (../../node_test.go):
// @socket.io/redis-emitter, a socket.io server with @socket.io/redis-adapter,
// socket.io-client sockets connected to that server, and notepack.io itself,
// all on the Redis whose URL is argv[2].
//
// Commands arrive as JSON lines on stdin and each gets exactly one reply line
// on stdout: {"id":N,"ok":true,...} or {"id":N,"ok":false,"error":"..."}.
// Other lines on stdout are events: {"type":"ready"} once, then
// {"type":"event","name":CLIENT,"event":E,"args":[...]} for what clients
// receive. Values cross JSON tagged, both ways: {"$bin":BASE64} is a Buffer,
// {"$date":MS} a Date, {"$undefined":true} undefined.
//
//   {"cmd":"emit","to":[],"except":[],"volatile":false,"event":"e","args":[]}   emitter
//   {"cmd":"request","op":"socketsJoin|socketsLeave|disconnectSockets|serverSideEmit",
//    "to":[],"except":[],"rooms":[],"close":false,"args":[]}                       emitter
//   {"cmd":"server","requestsTimeout":MS} -> {"port":N}                           start the server (requestsTimeout optional)
//   {"cmd":"serverCount"} -> {"count":N}                                          adapter.serverCount()
//   {"cmd":"serverEmit","to":[],"except":[],"event":"e","args":[],"ackTimeout":MS}
//       -> {"err":null|"...","responses":[...]} when ackTimeout is set
//   {"cmd":"serverJoinAll","to":[],"rooms":[]}                                    io.in(to).socketsJoin(rooms)
//   {"cmd":"serverDisconnect","to":[],"except":[],"close":false}                  io.in(to).disconnectSockets(close)
//   {"cmd":"fetchSockets","to":[],"except":[]}
//       -> {"err":null|"...","ms":N,"sockets":[{"id","rooms","data","handshake"}]}  io.in(to).fetchSockets()
//   {"cmd":"allRooms"} -> {"err":null|"...","rooms":[...]}                        adapter.allRooms()
//   {"cmd":"serverSideEmitWithAck","args":[]} -> {"err":null|"...","ms":N,"responses":[...]}
//   {"cmd":"connect","name":"c"} -> {"sid":"..."}                                a client; acks every event with "ack-from-NAME"
//   {"cmd":"join","sid":"...","room":"r"}                                         server-side socket.join
//   {"cmd":"encode","value":V} -> {"b64":"..."}                                   notepack.encode
//   {"cmd":"decode","b64":"..."} -> {"value":V}                                   notepack.decode

import { createInterface } from "node:readline";
import { createServer } from "node:http";
import { createClient } from "redis";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { Emitter } from "@socket.io/redis-emitter";
import { createAdapter } from "@socket.io/redis-adapter";
import notepack from "notepack.io";

const redisURL = process.argv[2];
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if ("$bin" in v) return Buffer.from(v.$bin, "base64");
    if ("$date" in v) return new Date(v.$date);
    if ("$undefined" in v) return undefined;
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = revive(x);
    return o;
  }
  return v;
}

function tag(v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bin: Buffer.from(v).toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (v instanceof Date) return { $date: v.getTime() };
  if (v === undefined) return { $undefined: true };
  if (Array.isArray(v)) return v.map(tag);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = tag(x);
    return o;
  }
  return v;
}

const redisClients = [];
async function redis() {
  const c = createClient({ url: redisURL });
  c.on("error", (e) => process.stderr.write(`redis: ${e.message}\n`));
  await c.connect();
  redisClients.push(c);
  return c;
}

const emitter = new Emitter(await redis());
let io, httpServer;
const clients = new Map();

function select(op, to, except) {
  if (to && to.length) op = op.to(to);
  if (except && except.length) op = op.except(except);
  return op;
}

const handlers = {
  emit(c) {
    let op = select(emitter, c.to, c.except);
    if (c.volatile) op = op.volatile;
    op.emit(c.event, ...revive(c.args || []));
    return {};
  },
  request(c) {
    const op = select(emitter, c.to, c.except);
    switch (c.op) {
      case "socketsJoin": op.socketsJoin(c.rooms); break;
      case "socketsLeave": op.socketsLeave(c.rooms); break;
      case "disconnectSockets": op.disconnectSockets(c.close); break;
      case "serverSideEmit": emitter.serverSideEmit(...revive(c.args || [])); break;
      default: throw new Error(`unknown op ${c.op}`);
    }
    return {};
  },
  async server(c) {
    const pub = await redis();
    const sub = await redis();
    httpServer = createServer();
    const opts = c.requestsTimeout ? { requestsTimeout: c.requestsTimeout } : {};
    io = new Server(httpServer, { adapter: createAdapter(pub, sub, opts) });
    await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
    return { port: httpServer.address().port };
  },
  async serverCount() {
    return { count: await io.of("/").adapter.serverCount() };
  },
  serverEmit(c) {
    const op = select(io, c.to, c.except);
    const args = revive(c.args || []);
    if (!c.ackTimeout) {
      op.emit(c.event, ...args);
      return {};
    }
    return new Promise((resolve) => {
      op.timeout(c.ackTimeout).emit(c.event, ...args, (err, responses) => {
        resolve({ err: err ? err.message : null, responses: tag(responses) });
      });
    });
  },
  serverJoinAll(c) {
    select(io, c.to, c.except).socketsJoin(c.rooms);
    return {};
  },
  serverDisconnect(c) {
    select(io, c.to, c.except).disconnectSockets(!!c.close);
    return {};
  },
  async fetchSockets(c) {
    const start = Date.now();
    try {
      const sockets = await select(io, c.to, c.except).fetchSockets();
      return {
        err: null,
        ms: Date.now() - start,
        sockets: sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], data: tag(s.data), handshake: tag(s.handshake) })),
      };
    } catch (e) {
      return { err: e.message, ms: Date.now() - start, sockets: [] };
    }
  },
  async serverSideEmitWithAck(c) {
    const start = Date.now();
    try {
      const responses = await io.serverSideEmitWithAck(...revive(c.args || []));
      return { err: null, ms: Date.now() - start, responses: tag(responses) };
    } catch (e) {
      return { err: e.message, ms: Date.now() - start, responses: tag(e.responses || []) };
    }
  },
  async allRooms() {
    try {
      return { err: null, rooms: [...(await io.of("/").adapter.allRooms())] };
    } catch (e) {
      return { err: e.message, rooms: [] };
    }
  },
  connect(c) {
    const port = httpServer.address().port;
    const socket = connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], forceNew: true });
    clients.set(c.name, socket);
    socket.onAny((event, ...args) => {
      if (typeof args[args.length - 1] === "function") args.pop()(`ack-from-${c.name}`);
      out({ type: "event", name: c.name, event, args: tag(args) });
    });
    return new Promise((resolve, reject) => {
      socket.once("connect", () => resolve({ sid: socket.id }));
      socket.once("connect_error", (e) => reject(e));
    });
  },
  join(c) {
    const s = io.of("/").sockets.get(c.sid);
    if (!s) throw new Error(`no socket ${c.sid}`);
    s.join(c.room);
    return {};
  },
  encode(c) {
    return { b64: notepack.encode(revive(c.value)).toString("base64") };
  },
  decode(c) {
    return { value: tag(notepack.decode(Buffer.from(c.b64, "base64"))) };
  },
};

async function shutdown() {
  for (const s of clients.values()) s.close();
  if (io) await new Promise((resolve) => io.close(resolve));
  await Promise.allSettled(redisClients.map((c) => c.quit()));
  process.exit(0);
}

const rl = createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let c;
  try {
    c = JSON.parse(line);
    const h = handlers[c.cmd];
    if (!h) throw new Error(`unknown command ${c.cmd}`);
    out({ id: c.id, ok: true, ...(await h(c)) });
  } catch (e) {
    out({ id: c && c.id, ok: false, error: String(e && e.stack || e) });
  }
});
rl.on("close", shutdown);
out({ type: "ready" });
