/* The live page: products with live stock and every order's progress, over /ws/orders.
 *
 * Sources of truth: the socket says *that* an order changed (status, stage, event, time); the API
 * (/orders/<id>) says *what* it looks like now (history → stage timeline). Each event triggers a
 * detail fetch for its order; products are refreshed at most once a second while events flow.
 * When the socket drops it reconnects with exponential backoff and jitter, then asks
 * /orders?updated_since=<last event time - overlap> for everything it may have missed.
 * Nothing here carries the API token: the demo form asks for it and keeps it in sessionStorage.
 */
(() => {
  "use strict";

  const cfg = document.body.dataset;
  const MAX_ROWS = 60;
  const STAGES = ["process", "enrich", "finalize"];
  const TERMINAL = new Set(["completed", "failed"]);
  const RANK = { pending: 0, processing: 1, completed: 2, failed: 2 };
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const STABLE_AFTER_MS = 5000; // an open socket that lived this long resets the backoff
  const PING_EVERY_MS = 15000;
  const PONG_TIMEOUT_MS = 6000;
  const CATCHUP_OVERLAP_MS = 30000; // transactions commit out of timestamp order; re-reading is harmless
  const CATCHUP_MAX_PAGES = 20;
  // A socket that cannot keep up loses messages in the channel layer (its per-channel capacity):
  // a light catch-up now and then repairs that too, not only reconnects.
  const CATCHUP_EVERY_MS = 30000;
  const PRODUCTS_MIN_INTERVAL_MS = 1000;
  const DETAIL_DEBOUNCE_MS = 120;
  const DETAIL_CONCURRENCY = 4;
  const TOKEN_KEY = "orders.demoToken";

  const $ = (id) => document.getElementById(id);
  const els = {
    conn: $("conn"), connText: $("conn-text"), connRetry: $("conn-retry"), connLogin: $("conn-login"),
    orders: $("orders"), ordersEmpty: $("orders-empty"), template: $("order-template"),
    products: $("products"), productsUpdated: $("products-updated"),
    form: $("demo-form"), token: $("demo-token"), forget: $("demo-forget"), sku: $("demo-sku"),
    qty: $("demo-qty"), customer: $("demo-customer"), submit: $("demo-submit"), result: $("demo-result"),
  };

  // Server time minus browser time, so "12 s ago" is right even when the clocks disagree.
  const clockSkewMs = (Date.parse(cfg.serverNow) || Date.now()) - Date.now();
  const serverNow = () => Date.now() + clockSkewMs;

  /** order id -> {id, status, source, createdAt, failureReason, total, history, el, seq, ...} */
  const orders = new Map();
  let watermarkMs = Date.parse(cfg.serverNow) || Date.now();

  // ---------------------------------------------------------------------------------------------
  // Formatting
  // ---------------------------------------------------------------------------------------------
  function fmtDuration(ms) {
    if (ms == null || !isFinite(ms)) return "";
    if (ms < 0) ms = 0;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
    const m = Math.floor(ms / 60000);
    return `${m} m ${Math.round((ms % 60000) / 1000)} s`;
  }

  function fmtAgo(ms) {
    const s = Math.max(0, Math.round((serverNow() - ms) / 1000));
    if (s < 5) return "just now";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return new Date(ms).toLocaleString();
  }

  const ms = (iso) => (iso ? Date.parse(iso) : NaN);

  // ---------------------------------------------------------------------------------------------
  // HTTP
  // ---------------------------------------------------------------------------------------------
  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) {
      const error = new Error(`${url}: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  // ---------------------------------------------------------------------------------------------
  // Products (throttled: at most one refresh a second, and one more after a burst)
  // ---------------------------------------------------------------------------------------------
  let productsLastAt = 0;
  let productsTimer = null;
  let productsInFlight = false;
  const productRows = new Map();

  function scheduleProducts() {
    if (productsTimer) return;
    const wait = Math.max(0, productsLastAt + PRODUCTS_MIN_INTERVAL_MS - Date.now());
    productsTimer = setTimeout(() => {
      productsTimer = null;
      loadProducts();
    }, wait);
  }

  async function loadProducts() {
    if (productsInFlight) return scheduleProducts();
    productsInFlight = true;
    productsLastAt = Date.now();
    try {
      const products = await getJSON("/products");
      renderProducts(Array.isArray(products) ? products : products.results || []);
      els.productsUpdated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      els.productsUpdated.textContent = "could not load";
    } finally {
      productsInFlight = false;
    }
  }

  function renderProducts(products) {
    const seen = new Set();
    products.forEach((p, index) => {
      seen.add(p.sku);
      let row = productRows.get(p.sku);
      if (!row) {
        row = document.createElement("li");
        row.className = "product";
        row.dataset.sku = p.sku;
        row.innerHTML =
          '<div class="p-head"><span class="p-sku"></span><span class="p-name muted small"></span><span class="p-price"></span></div>' +
          '<div class="bar" aria-hidden="true"><span class="bar-avail"></span><span class="bar-res"></span></div>' +
          '<div class="p-stock small"><span class="p-avail"></span><span class="muted p-detail"></span></div>';
        productRows.set(p.sku, row);
      }
      if (els.products.children[index] !== row) els.products.insertBefore(row, els.products.children[index] || null);
      const stock = Number(p.stock) || 0;
      const reserved = Number(p.reserved) || 0;
      const available = Number(p.available);
      row.querySelector(".p-sku").textContent = p.sku;
      row.querySelector(".p-price").textContent = `${p.price}`;
      row.querySelector(".p-name").textContent = p.name;
      row.querySelector(".p-avail").textContent = `${available} available`;
      row.querySelector(".p-detail").textContent = ` · ${stock} in stock${reserved ? `, ${reserved} reserved` : ""}`;
      const scale = Math.max(stock, 1);
      row.querySelector(".bar-avail").style.width = `${(100 * Math.max(available, 0)) / scale}%`;
      row.querySelector(".bar-res").style.width = `${(100 * reserved) / scale}%`;
      row.classList.toggle("low", available <= Math.max(2, stock * 0.1));
      if (row.dataset.available !== undefined && row.dataset.available !== String(available)) flash(row);
      row.dataset.available = String(available);
    });
    for (const [sku, row] of productRows) {
      if (!seen.has(sku)) {
        row.remove();
        productRows.delete(sku);
      }
    }
    const current = els.sku.value;
    if (els.sku.options.length !== products.length) {
      els.sku.replaceChildren(
        ...products.map((p) => {
          const option = document.createElement("option");
          option.value = p.sku;
          option.textContent = `${p.sku} — ${p.price}`;
          return option;
        }),
      );
      if (current) els.sku.value = current;
    }
  }

  function flash(el) {
    el.classList.remove("flash");
    void el.offsetWidth; // restart the animation
    el.classList.add("flash");
  }

  // ---------------------------------------------------------------------------------------------
  // Orders: records, detail fetches, rows
  // ---------------------------------------------------------------------------------------------
  function record(id) {
    let rec = orders.get(id);
    if (!rec) {
      rec = {
        id, status: "pending", source: "", createdAt: NaN, failureReason: "", total: null, history: [],
        seq: 0, fetching: false, dirty: false, timer: null, el: null, fresh: true,
      };
      orders.set(id, rec);
    }
    return rec;
  }

  function onOrderEvent(event) {
    if (!event || typeof event.order_id !== "string") return;
    const at = ms(event.at);
    if (at > watermarkMs) watermarkMs = at;
    const rec = record(event.order_id);
    rec.seq += 1;
    // Events from different processes can arrive out of order (the outbox's "published" may read the
    // order before the process stage commits and land after it): a status never moves back, except
    // when an operator redrives a failed order.
    if (event.status && (event.event === "redriven" || RANK[event.status] >= (RANK[rec.status] ?? -1))) {
      rec.status = event.status;
    }
    if (event.source) rec.source = event.source;
    if (event.failure_reason) rec.failureReason = event.failure_reason;
    if (event.event === "accepted" && !isFinite(rec.createdAt)) rec.createdAt = at;
    const entry = { stage: event.stage, event: event.event, detail: event.detail || {}, at: event.at };
    if (!rec.history.some((h) => h.at === entry.at && h.stage === entry.stage && h.event === entry.event)) {
      rec.history.push(entry);
      rec.history.sort((a, b) => ms(a.at) - ms(b.at));
    }
    if (!isFinite(rec.createdAt)) rec.createdAt = at; // placed by first sight until the detail says better
    render(rec);
    scheduleDetail(rec);
    scheduleProducts();
  }

  // One fetch per order at a time; an event during a fetch marks it dirty, so the last fetch always
  // starts after the last event (the server bumps its cache before it announces).
  const detailQueue = [];
  let detailActive = 0;

  function scheduleDetail(rec, delay = DETAIL_DEBOUNCE_MS) {
    if (rec.fetching) {
      rec.dirty = true;
      return;
    }
    clearTimeout(rec.timer);
    rec.timer = setTimeout(() => {
      rec.timer = null;
      if (orders.get(rec.id) !== rec) return; // scrolled off the page meanwhile
      if (!detailQueue.includes(rec)) detailQueue.push(rec);
      pumpDetails();
    }, delay);
  }

  function pumpDetails() {
    while (detailActive < DETAIL_CONCURRENCY && detailQueue.length) {
      const rec = detailQueue.shift();
      if (rec.fetching) {
        rec.dirty = true;
        continue;
      }
      detailActive += 1;
      fetchDetail(rec).finally(() => {
        detailActive -= 1;
        pumpDetails();
      });
    }
  }

  async function fetchDetail(rec) {
    rec.fetching = true;
    rec.dirty = false;
    const seq = rec.seq;
    let retryIn = DETAIL_DEBOUNCE_MS;
    try {
      const detail = await getJSON(`/orders/${encodeURIComponent(rec.id)}`);
      // An event that arrived meanwhile set `dirty`: this answer may predate it, the next fetch will not.
      if (rec.seq === seq) applyDetail(rec, detail);
    } catch (error) {
      if (error.status !== 404) {
        rec.dirty = true; // the server is away: try again, slowly; the reconnect's catch-up also covers it
        retryIn = 3000;
      }
    } finally {
      rec.fetching = false;
      if (rec.dirty && orders.has(rec.id)) scheduleDetail(rec, retryIn);
    }
  }

  function applyDetail(rec, detail) {
    rec.status = detail.status;
    rec.source = detail.source;
    rec.createdAt = ms(detail.created_at);
    rec.failureReason = detail.failure_reason || "";
    rec.total = detail.total_amount;
    rec.updatedAt = detail.updated_at;
    rec.items = (detail.items || []).map((i) => `${i.qty}× ${i.sku}`).join(", ");
    rec.history = (detail.history || []).slice().sort((a, b) => ms(a.at) - ms(b.at));
    rec.detailed = true;
    render(rec);
  }

  function upsertFromList(item) {
    const known = orders.get(item.order_id);
    const updated = ms(item.updated_at);
    if (updated > watermarkMs) watermarkMs = updated;
    // (the list and the detail format times differently: compare instants, not strings)
    if (known && ms(known.updatedAt) === updated && known.status === item.status) return;
    const rec = record(item.order_id);
    if (!known) {
      rec.status = item.status;
      rec.source = item.source;
      rec.createdAt = ms(item.created_at);
      rec.failureReason = item.failure_reason || "";
      rec.total = item.total_amount;
      rec.fresh = false;
    }
    rec.updatedAt = item.updated_at;
    render(rec);
    scheduleDetail(rec, 0);
  }

  // ---------------------------------------------------------------------------------------------
  // Timeline from history: a stage's time runs from the end of the previous step to its own end
  // (process runs from acceptance, so it includes the outbox publish and the queue wait).
  // ---------------------------------------------------------------------------------------------
  function timeline(rec) {
    const history = rec.history;
    const last = (pred) => {
      for (let i = history.length - 1; i >= 0; i -= 1) if (pred(history[i])) return history[i];
      return null;
    };
    const first = (pred) => history.find(pred) || null;
    const accepted = first((h) => h.event === "accepted");
    const published = first((h) => h.stage === "outbox" && h.event === "published");
    const failed = last((h) => h.event === "failed");
    // From acceptance: the outbox row is marked published after the broker confirmed, which can be
    // later than a fast process stage, so "published" is no start line.
    let start = accepted ? ms(accepted.at) : published ? ms(published.at) : NaN;
    let blocked = false;
    let failedPlaced = false;
    const stages = STAGES.map((name) => {
      const retries = history.filter((h) => h.stage === name && h.event === "retry").length;
      const end = last((h) => h.stage === name && (h.event === "completed" || h.event === "failed"));
      let out;
      if (blocked) {
        out = { name, state: "skipped", retries };
      } else if (end) {
        const state = end.event === "failed" ? "failed" : "done";
        out = { name, state, retries, ms: ms(end.at) - start };
        start = ms(end.at);
        if (state === "failed") {
          blocked = true;
          failedPlaced = true;
        }
      } else if (rec.status === "failed") {
        // failed without a stage-tagged end (e.g. a dead letter from the archiver): blame this stage
        out = { name, state: "failed", retries, ms: failed ? ms(failed.at) - start : NaN };
        blocked = true;
        failedPlaced = true;
      } else if (rec.status === "completed") {
        out = { name, state: "done", retries };
      } else if (isFinite(start)) {
        out = { name, state: "running", retries, since: start };
        blocked = true; // later stages wait
      } else {
        out = { name, state: "waiting", retries };
        blocked = true;
      }
      return out;
    });
    stages.forEach((s) => {
      if (s.state === "skipped" && !failedPlaced) s.state = "waiting";
    });
    const endEvent = rec.status === "completed" ? last((h) => h.stage === "finalize" && h.event === "completed") : failed;
    return {
      stages,
      retries: history.filter((h) => h.event === "retry").length,
      deadLettered: history.some((h) => h.event === "dead_lettered"),
      redriven: history.filter((h) => h.event === "redriven").length,
      duplicates: history.filter((h) => h.event === "duplicate_skipped").length,
      totalMs: accepted && endEvent && TERMINAL.has(rec.status) ? ms(endEvent.at) - ms(accepted.at) : NaN,
    };
  }

  function render(rec) {
    if (!rec.el) {
      const el = els.template.content.firstElementChild.cloneNode(true);
      el.dataset.orderId = rec.id;
      const link = el.querySelector(".oid");
      link.href = `/orders/${encodeURIComponent(rec.id)}`;
      link.textContent = rec.id.slice(0, 8);
      link.title = rec.id;
      rec.el = el;
      placeRow(rec);
      if (rec.fresh) el.classList.add("new");
    } else if (rec.el.dataset.createdAt !== String(rec.createdAt)) {
      placeRow(rec);
    }
    const el = rec.el;
    const previous = el.dataset.status;
    el.dataset.status = rec.status;
    el.dataset.createdAt = String(rec.createdAt);
    if (previous && previous !== rec.status) flash(el);
    el.querySelector(".status").textContent = rec.status;

    const t = timeline(rec);
    const meta = [rec.source, isFinite(rec.createdAt) ? fmtAgo(rec.createdAt) : "", rec.items || ""];
    if (rec.total != null && rec.total !== "") meta.push(`total ${rec.total}`);
    if (isFinite(t.totalMs)) meta.push(`${fmtDuration(t.totalMs)} end to end`);
    el.querySelector(".meta").textContent = meta.filter(Boolean).join(" · ");

    t.stages.forEach((s) => {
      const node = el.querySelector(`.stage[data-stage="${s.name}"]`);
      node.dataset.state = s.state;
      node.dataset.since = s.state === "running" ? String(s.since) : "";
      const time = node.querySelector(".stage-time");
      let text = "";
      if (s.state === "running") text = fmtDuration(serverNow() - s.since);
      else if (s.state === "done" || s.state === "failed") text = fmtDuration(s.ms);
      else if (s.state === "skipped") text = "—";
      if (s.retries) text += `${text ? " " : ""}↻${s.retries}`;
      time.textContent = text;
      node.title = `${s.name}: ${s.state}${s.retries ? `, ${s.retries} retr${s.retries === 1 ? "y" : "ies"}` : ""}`;
    });

    const badges = [];
    if (t.retries) badges.push(["retry", `${t.retries} retr${t.retries === 1 ? "y" : "ies"}`]);
    if (t.deadLettered) badges.push(["dlq", "dead-lettered"]);
    else if (rec.status === "failed") badges.push(["quiet", "not dead-lettered"]);
    if (t.redriven) badges.push(["redrive", `redriven ×${t.redriven}`]);
    if (t.duplicates) badges.push(["quiet", `${t.duplicates} duplicate${t.duplicates === 1 ? "" : "s"} skipped`]);
    el.querySelector(".badges").replaceChildren(
      ...badges.map(([kind, text]) => {
        const b = document.createElement("span");
        b.className = `badge ${kind}`;
        b.textContent = text;
        return b;
      }),
    );
    el.dataset.deadLettered = t.deadLettered ? "true" : "false";
    const reason = el.querySelector(".reason");
    reason.textContent = rec.status === "failed" && rec.failureReason ? rec.failureReason : "";
    reason.hidden = !reason.textContent;
    updateCounts();
  }

  function placeRow(rec) {
    const list = els.orders;
    const key = isFinite(rec.createdAt) ? rec.createdAt : serverNow();
    let before = null;
    for (const child of list.children) {
      if (child === rec.el) continue;
      const other = Number(child.dataset.createdAt);
      if (!(other >= key)) {
        before = child;
        break;
      }
    }
    if (rec.el.nextSibling !== before || rec.el.parentNode !== list) list.insertBefore(rec.el, before);
    rec.el.dataset.createdAt = String(rec.createdAt);
    trimRows();
    els.ordersEmpty.hidden = list.children.length > 0;
  }

  function trimRows() {
    const rows = els.orders.children;
    for (let i = rows.length - 1; i >= MAX_ROWS; i -= 1) {
      const id = rows[i].dataset.orderId;
      const rec = orders.get(id);
      if (rec) {
        clearTimeout(rec.timer);
        orders.delete(id);
      }
      rows[i].remove();
    }
  }

  let countsTimer = null;
  function updateCounts() {
    if (countsTimer) return;
    countsTimer = requestAnimationFrame(() => {
      countsTimer = null;
      const counts = { pending: 0, processing: 0, completed: 0, failed: 0 };
      for (const rec of orders.values()) if (rec.status in counts) counts[rec.status] += 1;
      for (const [status, n] of Object.entries(counts)) {
        const node = document.querySelector(`[data-count="${status}"] b`);
        if (node) node.textContent = String(n);
      }
    });
  }

  // Running stages and "ago" labels tick once a second.
  setInterval(() => {
    for (const node of document.querySelectorAll('.stage[data-state="running"]')) {
      const since = Number(node.dataset.since);
      const retries = node.querySelector(".stage-time").textContent.match(/↻\d+/);
      node.querySelector(".stage-time").textContent = fmtDuration(serverNow() - since) + (retries ? ` ${retries[0]}` : "");
    }
  }, 1000);
  setInterval(() => {
    if (!document.hidden) for (const rec of orders.values()) if (rec.el) render(rec);
  }, 5000);

  // ---------------------------------------------------------------------------------------------
  // Initial load and catch-up
  // ---------------------------------------------------------------------------------------------
  async function loadRecent() {
    const page = await getJSON("/orders");
    (page.results || []).slice(0, MAX_ROWS).forEach(upsertFromList);
    els.ordersEmpty.hidden = els.orders.children.length > 0;
  }

  async function catchUp() {
    const since = new Date(watermarkMs - CATCHUP_OVERLAP_MS).toISOString();
    let url = `/orders?updated_since=${encodeURIComponent(since)}`;
    for (let pages = 0; url && pages < CATCHUP_MAX_PAGES; pages += 1) {
      const page = await getJSON(url);
      (page.results || []).forEach(upsertFromList);
      url = page.next ? sameOrigin(page.next) : null;
    }
    // The list above is oldest change first; after a long gap make sure the newest orders are shown.
    if (url) await loadRecent();
    // Events that do not touch updated_at (retries, duplicates) are in the history: refresh open orders.
    for (const rec of orders.values()) if (!TERMINAL.has(rec.status)) scheduleDetail(rec, 0);
    scheduleProducts();
  }

  function sameOrigin(url) {
    const parsed = new URL(url, location.href);
    return parsed.pathname + parsed.search; // behind a proxy `next` may name another host or scheme
  }

  // ---------------------------------------------------------------------------------------------
  // The socket: connect, heartbeat, reconnect with exponential backoff + jitter
  // ---------------------------------------------------------------------------------------------
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

  /** Same origin by default (a proxy routes /ws/ to the live process); with a port (data-ws-port,
   * LIVE_WS_PORT) the live process on this page's host at that port. */
  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const host = cfg.wsPort ? `${location.hostname}:${cfg.wsPort}` : location.host;
    return `${scheme}://${host}${cfg.wsPath}`;
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

  setInterval(() => {
    if (socket && socket.readyState === WebSocket.OPEN && !document.hidden) catchUp().catch(() => {});
  }, CATCHUP_EVERY_MS);

  els.connRetry.addEventListener("click", reconnectNow);
  window.addEventListener("online", reconnectNow);
  window.addEventListener("offline", () => {
    if (socket) dropSocket(socket, 1006);
  });

  // ---------------------------------------------------------------------------------------------
  // Demo form: the token is pasted by the user, kept in this tab only
  // ---------------------------------------------------------------------------------------------
  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  try {
    els.token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (error) {
    /* storage disabled */
  }
  els.forget.addEventListener("click", () => {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (error) {
      /* storage disabled */
    }
    els.token.value = "";
    showResult("Token forgotten.", "ok");
  });

  function showResult(text, kind) {
    els.result.textContent = text;
    els.result.dataset.kind = kind;
  }

  els.form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const token = els.token.value.trim();
    if (!token) return showResult("Paste the API token first.", "error");
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch (error) {
      /* storage disabled: the token stays in the field only */
    }
    els.submit.disabled = true;
    showResult("Sending…", "pending");
    try {
      const response = await fetch("/orders", {
        method: "POST",
        credentials: "omit", // the bearer token authenticates; no session, so no CSRF question
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          Authorization: `Bearer ${token}`,
          "X-Idempotency-Key": newKey(),
        },
        body: JSON.stringify({
          customer_id: els.customer.value.trim() || "demo",
          source: "web",
          items: [{ sku: els.sku.value, qty: Number(els.qty.value) || 1 }],
        }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) showResult(`Accepted: order ${String(body.order_id).slice(0, 8)} (${body.status}).`, "ok");
      else showResult(`${response.status}: ${body.message || response.statusText}`, "error");
    } catch (error) {
      showResult("The server did not answer; try again.", "error");
    } finally {
      els.submit.disabled = false;
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------------------------
  connect();
  loadProducts();
  loadRecent().catch(() => {
    els.ordersEmpty.textContent = "Could not load orders; they will appear as they change.";
  });
})();
