// The socket: connect, heartbeat, reconnect with exponential backoff + jitter, and the connection badge.
import { socketUrl } from "./config.js";
import { els } from "./dom.js";
import { catchUp, onOrderEvent } from "./feed.js";

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 10000;
const STABLE_AFTER_MS = 5000; // an open socket that lived this long resets the backoff
const PING_EVERY_MS = 15000;
const PONG_TIMEOUT_MS = 6000;
// A socket that cannot keep up loses messages in the channel layer (its per-channel capacity):
// a light catch-up now and then repairs that too, not only reconnects.
const CATCHUP_EVERY_MS = 30000;

let socket = null;
let attempt = 0;
let openedAt = 0;
let reconnectAt = 0;
let reconnectTimer = null;
let countdownTimer = null;
let pingTimer = null;
let pongTimer = null;
let opens = 0;

function setConn(state, text) {
  els.conn.dataset.state = state;
  els.connText.textContent = text;
  els.connRetry.hidden = state !== "reconnecting" && state !== "offline";
}

function connect() {
  clearTimeout(reconnectTimer);
  clearInterval(countdownTimer);
  reconnectTimer = countdownTimer = null;
  if (socket) return;
  setConn(opens ? "reconnecting" : "connecting", opens ? "Reconnecting…" : "Connecting…");
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (error) {
    scheduleReconnect();
    return;
  }
  socket = ws;
  ws.onopen = () => {
    opens += 1;
    openedAt = Date.now();
    setConn("live", "Live");
    heartbeat();
    catchUp().catch(() => {
      // the API is not answering yet: try again, the socket itself is fine
      setTimeout(() => socket === ws && catchUp().catch(() => {}), 2000);
    });
  };
  ws.onmessage = (message) => {
    heartbeat();
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    if (frame.type === "order.event") onOrderEvent(frame.event);
    else if (frame.type === "error") console.warn("live feed:", frame.message);
  };
  ws.onclose = (close) => dropSocket(ws, close.code);
  ws.onerror = () => {}; // onclose follows and handles it
}

function heartbeat() {
  clearTimeout(pingTimer);
  clearTimeout(pongTimer);
  pongTimer = null;
  pingTimer = setTimeout(() => {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "ping" }));
    const ws = socket;
    pongTimer = setTimeout(() => dropSocket(ws, 4000), PONG_TIMEOUT_MS); // half-open: no answer
  }, PING_EVERY_MS);
}

function dropSocket(ws, code) {
  if (socket !== ws) return;
  socket = null;
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  try {
    ws.close();
  } catch (error) {
    /* already closed */
  }
  clearTimeout(pingTimer);
  clearTimeout(pongTimer);
  if (openedAt && Date.now() - openedAt > STABLE_AFTER_MS) attempt = 0;
  openedAt = 0;
  if (code === 4401) {
    setConn("denied", "Staff login needed for the live feed");
    els.connLogin.hidden = false;
    return;
  }
  scheduleReconnect();
}

function scheduleReconnect() {
  if (reconnectTimer) return;
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  const delay = cap / 2 + Math.random() * (cap / 2); // "equal jitter": never 0, never in lockstep
  attempt += 1;
  reconnectAt = Date.now() + delay;
  const tick = () => {
    const left = Math.max(0, Math.ceil((reconnectAt - Date.now()) / 1000));
    if (navigator.onLine === false) setConn("offline", "Offline — waiting for the network");
    else setConn("reconnecting", `Reconnecting in ${left} s`);
  };
  tick();
  countdownTimer = setInterval(tick, 250);
  reconnectTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  if (socket) return;
  attempt = 0;
  connect();
}

export function startSocket() {
  setInterval(() => {
    if (socket && socket.readyState === WebSocket.OPEN && !document.hidden) catchUp().catch(() => {});
  }, CATCHUP_EVERY_MS);

  els.connRetry.addEventListener("click", reconnectNow);
  window.addEventListener("online", reconnectNow);
  window.addEventListener("offline", () => {
    if (socket) dropSocket(socket, 1006);
  });
  connect();
}
