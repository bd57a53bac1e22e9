// The page's fixed elements (orders/templates/orders/live.html), looked up once.
const $ = (id) => document.getElementById(id);

export const els = {
  conn: $("conn"), connText: $("conn-text"), connRetry: $("conn-retry"), connLogin: $("conn-login"),
  orders: $("orders"), ordersEmpty: $("orders-empty"), template: $("order-template"),
  products: $("products"), productsUpdated: $("products-updated"),
  form: $("demo-form"), token: $("demo-token"), forget: $("demo-forget"), sku: $("demo-sku"),
  qty: $("demo-qty"), customer: $("demo-customer"), submit: $("demo-submit"), result: $("demo-result"),
};

export function flash(el) {
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
}
