// Order rows: one per record, newest first, capped at MAX_ROWS; the status counts in the top bar.
import { serverNow } from "./config.js";
import { els, flash } from "./dom.js";
import { fmtAgo, fmtDuration } from "./format.js";
import { orders } from "./state.js";
import { timeline } from "./timeline.js";

export const MAX_ROWS = 60;

export function render(rec) {
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
  el.querySelector(".status").textContent = rec.status.replace("_", " ");

  const t = timeline(rec);
  const meta = [rec.source, isFinite(rec.createdAt) ? fmtAgo(rec.createdAt) : "", rec.items || ""];
  if (rec.total != null && rec.total !== "") meta.push(`total ${rec.total}`);
  if (isFinite(t.totalMs)) meta.push(`${fmtDuration(t.totalMs)} end to end`);
  el.querySelector(".meta").textContent = meta.filter(Boolean).join(" · ");

  // The template has one .stage per pipeline stage, from the same list the timeline walks.
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

// A row that falls off the page takes its record along: it is no longer followed.
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
    const counts = { pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0, refund_pending: 0, refunded: 0 };
    for (const rec of orders.values()) if (rec.status in counts) counts[rec.status] += 1;
    for (const [status, n] of Object.entries(counts)) {
      const node = document.querySelector(`[data-count="${status}"] b`);
      if (node) node.textContent = String(n);
    }
  });
}

/** Running stages tick once a second; "ago" labels and the rest every five. */
export function startTicking() {
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
}
