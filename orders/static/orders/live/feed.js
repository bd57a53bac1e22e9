// Keeping the records current: each event triggers a detail fetch for its order (the socket says *that*
// an order changed, /orders/<id> says *what* it looks like now); the list fills the page and catches up.
import { getJSON, sameOrigin } from "./api.js";
import { els } from "./dom.js";
import { scheduleProducts } from "./products.js";
import { MAX_ROWS, render } from "./render.js";
import { TERMINAL, applyDetail, applyEvent, applyListItem, orders, watermarkMs } from "./state.js";

const DETAIL_DEBOUNCE_MS = 120;
const DETAIL_CONCURRENCY = 4;
const CATCHUP_OVERLAP_MS = 30000; // transactions commit out of timestamp order; re-reading is harmless
const CATCHUP_MAX_PAGES = 20;

export function onOrderEvent(event) {
  const rec = applyEvent(event);
  if (!rec) return;
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
    if (rec.seq === seq) {
      applyDetail(rec, detail);
      render(rec);
    }
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

function upsertFromList(item) {
  const rec = applyListItem(item);
  if (!rec) return;
  render(rec);
  scheduleDetail(rec, 0);
}

export async function loadRecent() {
  const page = await getJSON("/orders");
  (page.results || []).slice(0, MAX_ROWS).forEach(upsertFromList);
  els.ordersEmpty.hidden = els.orders.children.length > 0;
}

/** Everything changed since the last change seen (less an overlap), after a reconnect and now and then. */
export async function catchUp() {
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
