/* The live page: products with live stock and every order's progress, over /ws/orders.
 *
 * Sources of truth: the socket says *that* an order changed (status, stage, event, time); the API
 * (/orders/<id>) says *what* it looks like now (history → stage timeline). Each event triggers a
 * detail fetch for its order; products are refreshed at most once a second while events flow.
 * When the socket drops it reconnects with exponential backoff and jitter, then asks
 * /orders?updated_since=<last event time - overlap> for everything it may have missed.
 * Nothing here carries the API token: the demo form asks for it and keeps it in sessionStorage.
 *
 * Native ES modules, no build step (the manifest storage rewrites the imports to hashed names):
 *   config    what the server wrote into the page: clock, socket address, pipeline stages
 *   state     order records; events, details and list rows folded into them
 *   timeline  an order's per-stage timeline from its history
 *   render    order rows and the status counts
 *   feed      detail fetches, the first load and catch-ups
 *   socket    the WebSocket and the connection badge
 *   products  products with live stock
 *   demo      the demo order form
 *   format, api, dom   small helpers
 */
import { startDemoForm } from "./demo.js";
import { els } from "./dom.js";
import { loadRecent } from "./feed.js";
import { loadProducts } from "./products.js";
import { startTicking } from "./render.js";
import { startSocket } from "./socket.js";

startTicking();
startDemoForm();
startSocket();
loadProducts();
loadRecent().catch(() => {
  els.ordersEmpty.textContent = "Could not load orders; they will appear as they change.";
});
