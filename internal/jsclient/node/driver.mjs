// Driver for Go tests (see ../jsclient.go): one Node process hosts many named
// socket.io-client sockets. Commands arrive as JSON lines on stdin; replies and
// socket events leave as JSON lines on stdout, each with a process-wide
// increasing "seq" so tests can order events across clients.
//
// Commands ("id" is echoed in the reply; every command gets exactly one reply):
//   {"id":1,"cmd":"connect","name":"a","url":"http://127.0.0.1:1234","opts":{...}}
//   {"id":2,"cmd":"emit","name":"a","event":"e","args":[...]}
//   {"id":3,"cmd":"emit","name":"a","event":"e","args":[...],"ack":true,"timeout":5000}
//   {"id":4,"cmd":"reply","name":"a","ackId":7,"args":[...]}
//   {"id":5,"cmd":"transport","name":"a","wait":"websocket","timeout":5000}
//   {"id":6,"cmd":"close","name":"a","abrupt":false}
// Replies: {"seq":n,"id":1,"ok":true, ...} or {"seq":n,"id":1,"ok":false,"error":"..."}
// Events:  {"seq":n,"type":"ready","node":"v20..","client":"4.8.4"}
//          {"seq":n,"type":"connect","name":"a","sid":"...","recovered":false}
//          {"seq":n,"type":"connect_error","name":"a","message":"...","data":...,"errType":"TransportError"}
//          {"seq":n,"type":"disconnect","name":"a","reason":"...","description":"..."}
//          {"seq":n,"type":"event","name":"a","event":"e","args":[...],"ackId":7,"offset":"..."}
//          {"seq":n,"type":"dropped","name":"a","packet":"2[\"e\",...]"}  (see watchDrops)
//          {"seq":n,"type":"error","error":"..."}   (a bug in this driver, never fatal)

import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const clientVersion = createRequire(import.meta.url)("socket.io-client/package.json").version;

let seq = 0;
function out(obj) {
  let line;
  try {
    line = JSON.stringify({ seq: ++seq, ...obj });
  } catch (e) {
    line = JSON.stringify({ seq, ...pick(obj, ["id", "type", "name", "event"]), ok: false, error: `unserialisable output: ${e.message}` });
  }
  process.stdout.write(line + "\n");
}

function pick(obj, keys) {
  const r = {};
  for (const k of keys) if (obj[k] !== undefined) r[k] = obj[k];
  return r;
}

// err.description of a TransportError can be an Error or an ErrorEvent with
// cycles; the test only needs something readable.
function describe(v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (v instanceof Error) return v.message;
  if (typeof v.message === "string") return v.message;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

function jsonSafe(v) {
  try {
    return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
  } catch {
    return String(v);
  }
}

// Unhandled errors are reported, not fatal: one bad test must not take down
// every other client in the process.
process.on("uncaughtException", (e) => out({ type: "error", error: String(e && e.stack || e) }));
process.on("unhandledRejection", (e) => out({ type: "error", error: String(e && e.stack || e) }));
process.stdout.on("error", () => process.exit(0)); // Go side went away

const clients = new Map(); // name -> { socket, acks: Map<number, fn>, nextAck }

function client(name) {
  const c = clients.get(name);
  if (!c) throw new Error(`no client named ${JSON.stringify(name)}`);
  return c;
}

// watchDrops reports the packets a client discards itself, which no server
// can receive, so that tests can tell them from packets a server lost:
// socket.io-client counts itself connected until its engine's close event,
// and meanwhile (1) a packet handed to a transport no longer open
// (Transport.send), or written to a WebSocket that has read the server's
// close frame (readyState CLOSING: the ws package's sendAfterClose, a
// browser's send), is discarded, and (2) the engine's write buffer,
// packets waiting for the transport's drain, is cleared at the close
// (engine.io-client 6 Socket._onClose; it keeps the buffer for the "close"
// listeners, hence the read there). Packets are reported as socket.io
// packets ("2[...]" for an event).
function watchDrops(engine, report) {
  if (!engine || engine.__watched) return;
  engine.__watched = true;
  const wrap = (transport) => {
    if (!transport || transport.name !== "websocket" || transport.__watched) return;
    transport.__watched = true;
    const send = transport.send.bind(transport);
    transport.send = (packets) => {
      // engine.io-client's Transport.send discards what it is given once
      // the transport is no longer open.
      if (transport.readyState !== "open") for (const p of packets) if (p.type === "message") report(String(p.data));
      return send(packets);
    };
    const write = transport.doWrite.bind(transport);
    transport.doWrite = (packet, data) => {
      if (packet.type === "message" && transport.ws && transport.ws.readyState !== 1) report(String(packet.data));
      return write(packet, data);
    };
  };
  wrap(engine.transport);
  engine.on("upgrade", wrap);
  engine.on("close", () => {
    for (const p of engine.writeBuffer.slice(engine._prevBufferLen || 0)) {
      if (p.type === "message") report(String(p.data));
    }
  });
}

const handlers = {
  connect(cmd) {
    if (typeof cmd.name !== "string" || cmd.name === "") throw new Error("connect needs a name");
    if (clients.has(cmd.name)) throw new Error(`client ${JSON.stringify(cmd.name)} already exists`);
    if (typeof cmd.url !== "string") throw new Error("connect needs a url");
    // forceNew: io() otherwise shares one Manager per URL, so a second client
    // would silently reuse the first one's transport, query and headers.
    const socket = io(cmd.url, { forceNew: true, ...(cmd.opts || {}) });
    const name = cmd.name;
    const c = { socket, acks: new Map(), nextAck: 1, closed: false };
    clients.set(name, c);
    // After close the name may be reused; late events of the old socket must
    // not be attributed to the new one.
    const report = (obj) => c.closed || out({ name, ...obj });
    socket.on("connect", () => report({ type: "connect", sid: socket.id, recovered: socket.recovered === true }));
    socket.on("connect_error", (err) =>
      report({
        type: "connect_error",
        message: err && err.message,
        data: jsonSafe(err && err.data),
        errType: err && typeof err.type === "string" ? err.type : undefined,
        description: describe(err && err.description),
      }),
    );
    socket.on("disconnect", (reason, details) =>
      report({ type: "disconnect", reason, description: describe(details && (details.description ?? details.message)) }),
    );
    socket.io.on("open", () => watchDrops(socket.io.engine, (packet) => report({ type: "dropped", packet })));
    socket.onAny((event, ...args) => {
      let ackId, offset;
      if (args.length && typeof args[args.length - 1] === "function") {
        ackId = c.nextAck++;
        c.acks.set(ackId, args.pop());
      } else if (socket._pid && args.length && typeof args[args.length - 1] === "string") {
        // With connection state recovery on, the server appends the packet's
        // offset to every event without an ack (socket.io-client keeps it in
        // the private _pid/_lastOffset pair); reported apart so that tests
        // compare the payload the application sees.
        offset = args.pop();
      }
      report({ type: "event", event, args: jsonSafe(args), ackId, offset });
    });
    return {};
  },

  async emit(cmd) {
    const { socket } = client(cmd.name);
    if (typeof cmd.event !== "string") throw new Error("emit needs an event name");
    const args = Array.isArray(cmd.args) ? cmd.args : [];
    if (!cmd.ack) {
      socket.emit(cmd.event, ...args);
      return {};
    }
    const ms = Number.isFinite(cmd.timeout) && cmd.timeout > 0 ? cmd.timeout : 5000;
    return new Promise((resolve, reject) => {
      socket.timeout(ms).emit(cmd.event, ...args, (err, ...res) => {
        if (err) reject(new Error(`ack timeout after ${ms}ms`));
        else resolve({ args: jsonSafe(res) });
      });
    });
  },

  reply(cmd) {
    const c = client(cmd.name);
    const fn = c.acks.get(cmd.ackId);
    if (!fn) throw new Error(`no pending server ack ${cmd.ackId} on ${cmd.name}`);
    c.acks.delete(cmd.ackId);
    fn(...(Array.isArray(cmd.args) ? cmd.args : []));
    return {};
  },

  async transport(cmd) {
    const { socket } = client(cmd.name);
    const current = () => socket.io.engine?.transport?.name ?? "";
    if (!cmd.wait) return { transport: current() };
    const ms = Number.isFinite(cmd.timeout) && cmd.timeout > 0 ? cmd.timeout : 5000;
    const deadline = Date.now() + ms;
    // Polling rather than listening for "upgrade": the engine is replaced on
    // every reconnect, so a listener on one engine can miss the change.
    while (current() !== cmd.wait) {
      if (Date.now() > deadline) throw new Error(`transport is ${JSON.stringify(current())}, not ${JSON.stringify(cmd.wait)}, after ${ms}ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return { transport: current() };
  },

  async close(cmd) {
    const c = client(cmd.name);
    const { socket } = c;
    if (cmd.abrupt) {
      // No DISCONNECT packet: the server sees the transport go away, as when a
      // browser tab is killed. Reconnection off, or the Manager would redial.
      socket.io.reconnection(false);
      socket.io.engine?.close();
    } else {
      socket.disconnect();
    }
    // disconnect() reports synchronously, but the engine closes only after
    // in-flight writes drain: wait, so the "disconnect" event is not dropped.
    if (socket.connected) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 5000);
        socket.once("disconnect", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    c.closed = true;
    clients.delete(cmd.name);
    return {};
  },
};

async function handle(line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    out({ id: null, ok: false, error: `bad JSON: ${e.message}` });
    return;
  }
  const id = cmd && typeof cmd === "object" ? cmd.id ?? null : null;
  const h = cmd && typeof cmd === "object" && Object.hasOwn(handlers, cmd.cmd) ? handlers[cmd.cmd] : null;
  if (!h) {
    out({ id, ok: false, error: `unknown command ${JSON.stringify(cmd && cmd.cmd)}` });
    return;
  }
  try {
    const res = await h(cmd);
    out({ id, ok: true, ...res });
  } catch (e) {
    out({ id, ok: false, error: e && e.message ? e.message : String(e) });
  }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (line.trim() !== "") handle(line);
});
rl.on("close", () => {
  // Disconnect cleanly so the server is not left waiting for ping timeouts,
  // then let the event loop drain; force the exit if something lingers.
  for (const { socket } of clients.values()) socket.disconnect();
  clients.clear();
  setTimeout(() => process.exit(0), 1000).unref();
});

out({ type: "ready", node: process.version, client: clientVersion });
