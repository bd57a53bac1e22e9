// What the server wrote into the page (orders/live.py): its clock, the socket's address, the stages.
const cfg = document.body.dataset;
const renderedAtMs = Date.parse(cfg.serverNow);

// Server time minus browser time, so "12 s ago" is right even when the clocks disagree.
const clockSkewMs = (renderedAtMs || Date.now()) - Date.now();
export const serverNow = () => Date.now() + clockSkewMs;

// The first catch-up point, on the server's clock (event times are server times too).
export const pageRenderedAtMs = renderedAtMs || Date.now();

/** Same origin by default (a proxy routes /ws/ to the live process); with a port (data-ws-port,
 * LIVE_WS_PORT) the live process on this page's host at that port. */
export function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const host = cfg.wsPort ? `${location.hostname}:${cfg.wsPort}` : location.host;
  return `${scheme}://${host}${cfg.wsPath}`;
}

// The pipeline's stages in order, from the broker topology (json_script "pipeline-stages"): no stage
// name is spelled in the script, so a stage added or renamed on the server shows here as it is.
export const STAGES = JSON.parse(document.getElementById("pipeline-stages").textContent).map((s) => s.name);
// The stage whose completion completes an order.
export const FINAL_STAGE = STAGES[STAGES.length - 1];
