// Order records and how events, details and list rows fold into them. No DOM here.
import { pageRenderedAtMs } from "./config.js";
import { ms } from "./format.js";

export const TERMINAL = new Set(["completed", "failed", "cancelled", "refunded"]);
// A status never moves back: cancelled ends pending or processing; a completed order is refunded after it.
const RANK = { pending: 0, processing: 1, completed: 2, failed: 2, cancelled: 2, refund_pending: 3, refunded: 4 };

/** order id -> {id, status, source, createdAt, failureReason, total, history, el, seq, ...} */
export const orders = new Map();
// The newest change seen, on the server's clock: the next catch-up reads from there.
export let watermarkMs = pageRenderedAtMs;

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

/** A socket event into its order's record; returns the record, or null for a malformed event. */
export function applyEvent(event) {
  if (!event || typeof event.order_id !== "string") return null;
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
  return rec;
}

/** The API's view of an order (/orders/<id>) replaces what the events had pieced together. */
export function applyDetail(rec, detail) {
  rec.status = detail.status;
  rec.source = detail.source;
  rec.createdAt = ms(detail.created_at);
  rec.failureReason = detail.failure_reason || "";
  rec.total = detail.total_amount;
  rec.updatedAt = detail.updated_at;
  rec.items = (detail.items || []).map((i) => `${i.qty}× ${i.sku}`).join(", ");
  rec.history = (detail.history || []).slice().sort((a, b) => ms(a.at) - ms(b.at));
  rec.detailed = true;
}

/** A row of the /orders list; returns the record to refresh, or null when nothing changed. */
export function applyListItem(item) {
  const known = orders.get(item.order_id);
  const updated = ms(item.updated_at);
  if (updated > watermarkMs) watermarkMs = updated;
  // (the list and the detail format times differently: compare instants, not strings)
  if (known && ms(known.updatedAt) === updated && known.status === item.status) return null;
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
  return rec;
}
