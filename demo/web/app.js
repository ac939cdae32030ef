// rtcio-router demo: a video room over plain RTCPeerConnections, signaled with
// the rtc.io protocol (see ../doc.go and the README's "What is hard-wired").
//
//   join-room {roomId, name}            we join; the server backfills presence
//   user-connected / user-disconnected  presence: a tile per peer
//   #rtcio:init-offer {source}          we are the existing (polite) peer: offer to source
//   #rtcio:message {source, target, data}  {description} or {candidate}, relayed 1:1
//   media-state {roomId, mic, cam, id}  mute/camera badges; cached for late joiners
//   stopScreenShare {roomId, id}        a peer stopped sharing: drop its share tile
//   #rtcio:peer-left {id}               drop the peer at once, not after ICE times out
//
// Query parameters: transport=polling|websocket (default: polling, then upgrade),
// ice=URL[,URL…] with iceUsername/iceCredential (default: no ICE servers, host
// candidates only), name=…, path=/socket.io/ (the router's server.path), and
// loopback=1 (test hook: use only 127.0.0.1/::1 ICE candidates). The room id is
// the URL hash.
"use strict";

const params = new URLSearchParams(location.search);
const config = {
  path: params.get("path") || "/socket.io/",
  transports: { polling: ["polling"], websocket: ["websocket"] }[params.get("transport")],
  iceServers: iceServersFrom(params),
  loopbackOnly: params.get("loopback") === "1",
  name: (params.get("name") || "guest-" + randomHex(2)).slice(0, 40),
};
const roomId = roomFromHash();

const $ = (sel, root = document) => root.querySelector(sel);
const peers = new Map(); // socket id -> Peer
const remoteMedia = new Map(); // socket id -> {mic, cam}, may arrive before the tile
const local = { stream: null, mic: true, cam: true, screen: null };
const errors = []; // for the tests: what went wrong, newest last
const left = []; // for the tests: the ids the server said left, oldest first
let socket = null;

// A hard-to-guess room id (128 random bits) in the URL hash, so the URL is
// the invitation and never reaches server logs.
function roomFromHash() {
  let id = decodeURIComponent(location.hash.slice(1));
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) {
    id = randomBase64url(16);
    history.replaceState(null, "", "#" + id);
  }
  addEventListener("hashchange", () => location.reload());
  return id;
}

function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}

function randomBase64url(n) {
  return btoa(String.fromCharCode(...randomBytes(n))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomHex(n) {
  return Array.from(randomBytes(n), (b) => b.toString(16).padStart(2, "0")).join("");
}

function iceServersFrom(p) {
  const urls = (p.get("ice") || "").split(",").map((s) => s.trim()).filter(Boolean);
  if (urls.length === 0) return [];
  const server = { urls };
  if (p.has("iceUsername")) server.username = p.get("iceUsername");
  if (p.has("iceCredential")) server.credential = p.get("iceCredential");
  return [server];
}

function report(msg, err) {
  const line = err ? `${msg}: ${err.name || "Error"}: ${err.message || err}` : msg;
  errors.push(line);
  console.warn(line);
}

function showError(text) {
  const el = $("#error");
  el.textContent = text;
  el.hidden = !text;
}

// --- ICE candidates on one machine -------------------------------------------

function isLoopbackCandidate(c) {
  // "candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host ..." -> the 5th field.
  const addr = (c || "").split(" ")[4] || "";
  return addr.startsWith("127.") || addr === "::1";
}

function keepCandidate(c) {
  return !config.loopbackOnly || !c.candidate || isLoopbackCandidate(c.candidate);
}

function filterSdp(desc) {
  if (!config.loopbackOnly || !desc.sdp) return desc;
  const sdp = desc.sdp.split("\r\n").filter((l) => !l.startsWith("a=candidate:") || isLoopbackCandidate(l.slice(2))).join("\r\n");
  return { type: desc.type, sdp };
}

// --- peers -------------------------------------------------------------------

// Peer is one remote socket: its tile and, once the handshake starts, its
// RTCPeerConnection. Negotiation is "perfect negotiation": either side may
// renegotiate at any time (screen share), and when both offer at once the
// polite side, the existing member, gives way, the impolite one, the newcomer,
// ignores the colliding offer.
class Peer {
  constructor(id) {
    this.id = id;
    this.name = "";
    this.pc = null;
    this.polite = false;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingAnswer = false;
    this.collisions = 0; // offers that crossed ours (glare), for the tests
    this.sentTracks = false;
    this.cameraStreamId = "";
    this.screenSender = null;
    this.inbox = Promise.resolve(); // signals are applied one at a time, in order
    this.tile = newTile(id);
    this.screenTile = null;
    this.render();
  }

  // start creates the RTCPeerConnection. The polite (existing) peer adds its
  // media at once, which fires negotiationneeded and so sends the offer; the
  // newcomer adds its media only after applying that offer, so its tracks ride
  // in the answer on the offered transceivers instead of causing a second offer.
  start(polite) {
    if (this.pc) return;
    this.polite = polite;
    const pc = (this.pc = new RTCPeerConnection({ iceServers: config.iceServers }));
    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        this.signal({ description: filterSdp(pc.localDescription) });
      } catch (err) {
        report(`offer to ${this.id}`, err);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      // A null candidate ends gathering; an empty one (end-of-candidates)
      // is forwarded like any other.
      if (candidate && keepCandidate(candidate)) this.signal({ candidate: candidate.toJSON() });
    };
    pc.onconnectionstatechange = () => this.render();
    pc.ontrack = ({ track, streams }) => this.onTrack(track, streams[0] || new MediaStream([track]));
    if (polite) {
      this.sendTracks();
      if (pc.getTransceivers().length === 0) {
        // No camera or microphone here: still ask for the peer's media.
        pc.addTransceiver("audio", { direction: "recvonly" });
        pc.addTransceiver("video", { direction: "recvonly" });
      }
    }
    this.render();
  }

  sendTracks() {
    if (this.sentTracks) return;
    this.sentTracks = true;
    for (const track of local.stream ? local.stream.getTracks() : []) this.pc.addTrack(track, local.stream);
    if (local.screen) this.screenSender = this.pc.addTrack(local.screen.getVideoTracks()[0], local.screen);
  }

  signal(data) {
    socket.emit("#rtcio:message", { source: socket.id, target: this.id, data });
  }

  receive(data) {
    this.inbox = this.inbox.then(() => this.apply(data)).catch((err) => report(`signal from ${this.id}`, err));
  }

  async apply({ description, candidate }) {
    const pc = this.pc;
    if (!pc) return;
    if (description) {
      const readyForOffer = !this.makingOffer && (pc.signalingState === "stable" || this.settingAnswer);
      const collision = description.type === "offer" && !readyForOffer;
      if (collision) this.collisions++;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return; // impolite: our offer wins; the polite peer rolls back
      this.settingAnswer = description.type === "answer";
      // On a collision (polite side only) this rolls our pending offer back
      // before applying theirs: setRemoteDescription(offer) in have-local-offer
      // is an implicit rollback (WebRTC 1.0, 4.4.1.5).
      await pc.setRemoteDescription(filterSdp(description));
      this.settingAnswer = false;
      if (description.type === "offer") {
        this.sendTracks(); // reuses the offered transceivers, see start()
        await pc.setLocalDescription();
        this.signal({ description: filterSdp(pc.localDescription) });
      }
    } else if (candidate) {
      if (!keepCandidate(candidate)) return;
      try {
        await pc.addIceCandidate(candidate);
      } catch (err) {
        if (!this.ignoreOffer) throw err; // candidates of an offer we ignored fail, as expected
      }
    }
  }

  onTrack(track, stream) {
    if (!this.cameraStreamId) this.cameraStreamId = stream.id;
    if (stream.id === this.cameraStreamId) {
      attach($("video", this.tile), stream);
      return;
    }
    // Any other stream is a screen share.
    if (!this.screenTile) {
      this.screenTile = newTile(this.id);
      this.screenTile.classList.add("screen");
      $(".state", this.screenTile).remove();
      this.tile.after(this.screenTile);
    }
    $(".name", this.screenTile).textContent = `${this.label()} — screen`;
    attach($("video", this.screenTile), stream);
    stream.onremovetrack = () => stream.getTracks().length === 0 && this.dropScreen();
    this.render();
  }

  dropScreen() {
    if (this.screenTile) this.screenTile.remove();
    this.screenTile = null;
    this.render();
  }

  label() {
    return this.name || this.id.slice(0, 8);
  }

  render() {
    const state = this.pc ? this.pc.connectionState : "waiting";
    const media = remoteMedia.get(this.id) || {};
    $(".name", this.tile).textContent = this.label();
    const st = $(".state", this.tile);
    st.textContent = state;
    st.dataset.state = state;
    $(".mic-off", this.tile).hidden = media.mic !== false;
    $(".cam-off", this.tile).hidden = media.cam !== false;
    $(".sharing", this.tile).hidden = !this.screenTile;
  }

  close() {
    if (this.pc) this.pc.close();
    this.tile.remove();
    this.dropScreen();
  }

  async snapshot() {
    const v = $("video", this.tile);
    let framesDecoded = 0;
    if (this.pc) {
      for (const s of (await this.pc.getStats()).values()) {
        if (s.type === "inbound-rtp" && s.kind === "video") framesDecoded += s.framesDecoded || 0;
      }
    }
    return {
      id: this.id,
      name: this.name,
      polite: this.polite,
      collisions: this.collisions,
      sharing: !!this.screenTile,
      state: this.pc ? this.pc.connectionState : "waiting",
      micBadge: !$(".mic-off", this.tile).hidden,
      camBadge: !$(".cam-off", this.tile).hidden,
      width: v.videoWidth,
      height: v.videoHeight,
      currentTime: v.currentTime,
      framesDecoded,
    };
  }
}

function newTile(id) {
  const tile = $("#tile-template").content.firstElementChild.cloneNode(true);
  tile.dataset.peer = id;
  $("#tiles").append(tile);
  updateWaiting();
  return tile;
}

function attach(video, stream) {
  if (video.srcObject === stream) return;
  video.srcObject = stream;
  video.play().catch(() => {
    // Autoplay with sound is blocked until the user interacts: play muted,
    // and unmute on the first click anywhere.
    video.muted = true;
    video.play().catch(() => {});
    addEventListener("click", () => { video.muted = false; }, { once: true });
  });
}

function peer(id) {
  let p = peers.get(id);
  if (!p) {
    p = new Peer(id);
    peers.set(id, p);
  }
  return p;
}

function removePeer(id) {
  const p = peers.get(id);
  if (p) p.close();
  peers.delete(id);
  remoteMedia.delete(id);
  updateWaiting();
}

function updateWaiting() {
  document.body.classList.toggle("alone", $("#tiles").querySelectorAll(".tile.remote").length === 0);
}

// --- local media and controls ------------------------------------------------

async function startMedia() {
  const video = { width: { ideal: 640 }, height: { ideal: 480 } };
  for (const constraints of [{ audio: true, video }, { video }, { audio: true }]) {
    try {
      local.stream = await navigator.mediaDevices.getUserMedia(constraints);
      break;
    } catch (err) {
      report("getUserMedia " + Object.keys(constraints).join("+"), err);
    }
  }
  if (!local.stream) {
    showError("No camera or microphone available (or permission denied): you can still watch and listen.");
    local.mic = local.cam = false;
  } else {
    local.mic = local.stream.getAudioTracks().length > 0;
    local.cam = local.stream.getVideoTracks().length > 0;
    $("#local-video").srcObject = local.stream;
  }
  renderLocal();
}

function renderLocal() {
  const hasAudio = !!local.stream && local.stream.getAudioTracks().length > 0;
  const hasVideo = !!local.stream && local.stream.getVideoTracks().length > 0;
  for (const t of hasAudio ? local.stream.getAudioTracks() : []) t.enabled = local.mic;
  for (const t of hasVideo ? local.stream.getVideoTracks() : []) t.enabled = local.cam;
  $("#mic").disabled = !hasAudio;
  $("#cam").disabled = !hasVideo;
  $("#mic").textContent = local.mic ? "Mute" : "Unmute";
  $("#mic").setAttribute("aria-pressed", String(!local.mic));
  $("#cam").textContent = local.cam ? "Stop camera" : "Start camera";
  $("#cam").setAttribute("aria-pressed", String(!local.cam));
  $("#share").textContent = local.screen ? "Stop sharing" : "Share screen";
  $("#share").setAttribute("aria-pressed", String(!!local.screen));
  $("#share").hidden = !navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia;
  $(".mic-off", $("#local-tile")).hidden = local.mic;
  $(".cam-off", $("#local-tile")).hidden = local.cam;
}

function sendMediaState() {
  if (socket && socket.connected) socket.emit("media-state", { roomId, mic: local.mic, cam: local.cam, id: socket.id });
}

function toggleMic() {
  local.mic = !local.mic;
  renderLocal();
  sendMediaState();
}

function toggleCam() {
  local.cam = !local.cam;
  renderLocal();
  sendMediaState();
}

async function toggleShare() {
  if (local.screen) return stopShare();
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    report("getDisplayMedia", err);
    return;
  }
  local.screen = stream;
  const track = stream.getVideoTracks()[0];
  track.onended = stopShare; // the browser's own "Stop sharing" button
  for (const p of peers.values()) if (p.pc && p.sentTracks) p.screenSender = p.pc.addTrack(track, stream);
  renderLocal();
}

function stopShare() {
  if (!local.screen) return;
  for (const p of peers.values()) {
    if (p.pc && p.screenSender && p.pc.signalingState !== "closed") p.pc.removeTrack(p.screenSender);
    p.screenSender = null;
  }
  for (const t of local.screen.getTracks()) t.stop();
  local.screen = null;
  if (socket && socket.connected) socket.emit("stopScreenShare", { roomId, id: socket.id });
  renderLocal();
}

// --- signaling -----------------------------------------------------------------

function renderSignal(state) {
  const el = $("#signal");
  const transport = socket && socket.io.engine && socket.io.engine.transport ? socket.io.engine.transport.name : "";
  el.dataset.state = state;
  el.textContent = state === "connected" ? `signaling: ${transport} · ${config.name}` : `signaling: ${state}`;
}

function connect() {
  if (typeof io !== "function") {
    showError("The socket.io client did not load: run `npm ci --prefix demo` where the router runs, then reload.");
    renderSignal("no client");
    return;
  }
  // A shorter first reconnect delay than the default 1 s (still randomized
  // by half): when a node restarts, the calls carry on, but signaling is
  // down until the reconnect recovers the session.
  socket = io({ path: config.path, transports: config.transports, closeOnBeforeunload: true, reconnectionDelay: 500 });

  socket.on("connect", () => {
    renderSignal("connected");
    socket.io.engine.once("upgrade", () => renderSignal("connected"));
    // The server kept our session (connection state recovery, server.recovery,
    // on any node of a cluster): same id, same room, and our peers never
    // heard we were away; what they sent meanwhile is replayed. The calls
    // carried on peer to peer, so there is nothing to redo.
    if (socket.recovered) return;
    // A new session: the peers of an old one were told we left and dropped
    // their side, so drop ours and join afresh.
    for (const id of [...peers.keys()]) removePeer(id);
    socket.emit("join-room", { roomId, name: config.name });
    sendMediaState(); // after join-room, so the server caches it for late joiners
  });
  socket.on("disconnect", (reason) => {
    // Media flows peer to peer and needs no signaling: keep the calls until
    // we know whether the reconnect gets our session back (see "connect").
    // Unless the server put us out: the client does not reconnect then, and
    // our peers were told we left.
    const out = reason === "io server disconnect";
    renderSignal(out ? `disconnected (${reason})` : `disconnected (${reason}), reconnecting`);
    if (out) for (const id of [...peers.keys()]) removePeer(id);
  });
  socket.on("connect_error", (err) => {
    report("connect_error", err);
    renderSignal("cannot connect, retrying");
  });

  socket.on("user-connected", ({ id, name } = {}) => {
    if (typeof id !== "string" || id === socket.id) return;
    const p = peer(id);
    p.name = typeof name === "string" ? name : "";
    p.render();
  });
  socket.on("user-disconnected", ({ id } = {}) => {
    left.push(id);
    removePeer(id);
  });
  socket.on("#rtcio:peer-left", ({ id } = {}) => {
    left.push(id);
    removePeer(id);
  });
  socket.on("#rtcio:init-offer", ({ source } = {}) => {
    if (typeof source !== "string" || source === socket.id) return;
    peer(source).start(true); // we were here first: polite, and we offer
  });
  socket.on("#rtcio:message", ({ source, target, data } = {}) => {
    if (target !== socket.id || typeof source !== "string" || !data) return;
    let p = peers.get(source);
    if (!p) {
      if (!data.description || data.description.type !== "offer") return; // stale: the peer is gone
      p = peer(source);
    }
    p.start(false); // no-op if started; else we are the newcomer: impolite
    p.receive(data);
  });
  socket.on("media-state", ({ id, mic, cam } = {}) => {
    if (typeof id !== "string" || id === socket.id) return;
    remoteMedia.set(id, { mic, cam });
    const p = peers.get(id);
    if (p) p.render();
  });
  socket.on("stopScreenShare", ({ id } = {}) => {
    for (const p of peers.values()) if (!id || p.id === id) p.dropScreen();
  });
}

// --- page ----------------------------------------------------------------------

function setup() {
  $("#room-link").value = location.href;
  $("#local-name").textContent = `${config.name} (you)`;
  $("#copy").onclick = async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      $("#copy").textContent = "Copied";
    } catch {
      $("#room-link").select();
    }
  };
  $("#mic").onclick = toggleMic;
  $("#cam").onclick = toggleCam;
  $("#share").onclick = toggleShare;
  updateWaiting();
  renderLocal();
}

// Hooks for the end-to-end test (demo/e2e_test.go): read-only state.
window.demo = {
  roomId,
  errors,
  async snapshot() {
    return {
      id: socket ? socket.id || "" : "",
      connected: !!socket && socket.connected,
      recovered: !!socket && socket.recovered === true,
      left: left.slice(),
      transport: socket && socket.io.engine && socket.io.engine.transport ? socket.io.engine.transport.name : "",
      roomId,
      mic: local.mic,
      cam: local.cam,
      peers: await Promise.all([...peers.values()].map((p) => p.snapshot())),
      errors: errors.slice(-10),
    };
  },
};

setup();
startMedia().finally(connect);
