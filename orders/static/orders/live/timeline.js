// An order's stage timeline from its history: a stage's time runs from the end of the previous step to
// its own end (the first stage runs from acceptance, so it includes the outbox publish and the queue wait).
import { FINAL_STAGE, STAGES } from "./config.js";
import { ms } from "./format.js";
import { TERMINAL } from "./state.js";

export function timeline(rec) {
  const history = rec.history;
  const last = (pred) => {
    for (let i = history.length - 1; i >= 0; i -= 1) if (pred(history[i])) return history[i];
    return null;
  };
  const first = (pred) => history.find(pred) || null;
  const accepted = first((h) => h.event === "accepted");
  // "outbox" is the publisher's history entry, not a pipeline stage.
  const published = first((h) => h.stage === "outbox" && h.event === "published");
  const failed = last((h) => h.event === "failed");
  // From acceptance: the outbox row is marked published after the broker confirmed, which can be
  // later than a fast first stage, so "published" is no start line.
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
    } else if (rec.status === "completed" || rec.status === "refund_pending" || rec.status === "refunded") {
      out = { name, state: "done", retries };
    } else if (rec.status === "cancelled") {
      // cancelled before this stage's work: it never runs
      out = { name, state: "skipped", retries };
      blocked = true;
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
    if (s.state === "skipped" && !failedPlaced && rec.status !== "cancelled") s.state = "waiting";
  });
  const sold = rec.status === "completed" || rec.status === "refund_pending" || rec.status === "refunded";
  const endEvent = sold ? last((h) => h.stage === FINAL_STAGE && h.event === "completed") : failed;
  return {
    stages,
    retries: history.filter((h) => h.event === "retry").length,
    deadLettered: history.some((h) => h.event === "dead_lettered"),
    redriven: history.filter((h) => h.event === "redriven").length,
    duplicates: history.filter((h) => h.event === "duplicate_skipped").length,
    totalMs: accepted && endEvent && TERMINAL.has(rec.status) ? ms(endEvent.at) - ms(accepted.at) : NaN,
  };
}
