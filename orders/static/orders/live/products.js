// Products with live stock, refreshed at most once a second while events flow, and once more after a burst.
import { getJSON } from "./api.js";
import { offerProducts } from "./demo.js";
import { els, flash } from "./dom.js";

const PRODUCTS_MIN_INTERVAL_MS = 1000;

let productsLastAt = 0;
let productsTimer = null;
let productsInFlight = false;
const productRows = new Map();

export function scheduleProducts() {
  if (productsTimer) return;
  const wait = Math.max(0, productsLastAt + PRODUCTS_MIN_INTERVAL_MS - Date.now());
  productsTimer = setTimeout(() => {
    productsTimer = null;
    loadProducts();
  }, wait);
}

export async function loadProducts() {
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
  offerProducts(products);
}
