// The demo form: the API token is pasted by the user and kept in this tab only (sessionStorage).
import { els } from "./dom.js";

const TOKEN_KEY = "orders.demoToken";

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function showResult(text, kind) {
  els.result.textContent = text;
  els.result.dataset.kind = kind;
}

/** The product picker follows the product list, keeping the current choice. */
export function offerProducts(products) {
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

export function startDemoForm() {
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
}
