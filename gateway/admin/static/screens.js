// The screens: overview, products, categories, orders, customers. Lists page and search on the server.
import { call, get } from "./api.js";
import { attempt, formValues, h, pager, showError, status, table, when } from "./ui.js";

const STATUSES = ["PENDING_PAYMENT", "PAID", "PAYMENT_FAILED", "SHIPPED", "DELIVERED", "CANCELLED"];
const SORTS = ["name", "-name", "price", "-price", "created_at", "-created_at"];

async function allCategories() {
  // Categories are few; the tree needs each of them, a page of 100 at a time.
  const found = [];
  for (let page = 1; ; page += 1) {
    const answer = await get("/categories", { page, page_size: 100 });
    found.push(...answer.items);
    if (found.length >= answer.total || answer.items.length === 0) return found;
  }
}

function categoryOptions(categories, selected, blank) {
  return [h("option", { value: "" }, blank),
    ...categories.map((c) => h("option", { value: c.id, selected: String(c.id) === String(selected ?? "") }, c.name))];
}

// ---- overview ----
async function overview(view) {
  const summary = await attempt(() => get("/admin/summary"));
  if (!summary) return view.replaceChildren();
  const revenue = summary.revenue.length ? summary.revenue.map((r) => `${r.amount} ${r.currency}`).join(" · ") : "0.00";
  view.replaceChildren(h("h1", {}, "Overview"),
    h("div", { class: "grid" },
      h("div", { class: "card", id: "revenue" }, h("h2", {}, "Revenue of paid orders"), h("div", { class: "big" }, revenue),
        h("p", {}, `${summary.revenue.reduce((n, r) => n + r.orders, 0)} paid, shipped or delivered orders`)),
      h("div", { class: "card", id: "by-status" }, h("h2", {}, "Orders by status"),
        table(["Status", "Orders"], Object.entries(summary.by_status).map(([name, count]) =>
          h("tr", {}, h("td", {}, h("a", { href: `#orders`, onclick: () => { ordersFilter.status = name; } },
            status(name))), h("td", {}, count))))),
      h("div", { class: "card", id: "low-stock" }, h("h2", {}, "Low stock"),
        summary.low_stock.length ? table(["SKU", "Product", "Available", "Threshold"], summary.low_stock.map((s) =>
          h("tr", {}, h("td", {}, s.sku), h("td", {}, s.name), h("td", {}, s.available), h("td", {}, s.low_stock_threshold))))
          : h("p", { class: "ok" }, "Every product is above its threshold."))),
    h("div", { class: "card", id: "recent" }, h("h2", {}, "Latest orders"),
      table(["Order", "Customer", "Status", "Total", "Placed"], summary.recent_orders.map((o) =>
        h("tr", {}, h("td", {}, h("a", { href: "#orders", onclick: () => { ordersFilter.open = o.id; } }, `#${o.id}`)),
          h("td", {}, o.customer_id), h("td", {}, status(o.status)), h("td", {}, `${o.total} ${o.currency}`),
          h("td", {}, when(o.created_at)))))));
}

// ---- products ----
const productsFilter = { page: 1, page_size: 20, sort: "name" };

async function products(view) {
  const categories = await attempt(allCategories) || [];
  const names = Object.fromEntries(categories.map((c) => [c.id, c.name]));
  const search = h("form", { class: "inline", id: "product-search", onsubmit: (event) => {
    event.preventDefault();
    Object.assign(productsFilter, formValues(event.target), { page: 1 });
    productsFilter.in_stock = event.target.elements.in_stock.checked ? "true" : "";
    products(view);
  } },
  h("label", {}, "Search", h("input", { name: "q", value: productsFilter.q || "", placeholder: "name, SKU, description" })),
  h("label", {}, "Category", h("select", { name: "category_id" }, categoryOptions(categories, productsFilter.category_id, "Any"))),
  h("label", {}, "Min price", h("input", { name: "min_price", class: "small", value: productsFilter.min_price || "" })),
  h("label", {}, "Max price", h("input", { name: "max_price", class: "small", value: productsFilter.max_price || "" })),
  h("label", {}, "In stock", h("input", { type: "checkbox", name: "in_stock", checked: productsFilter.in_stock === "true" })),
  h("label", {}, "Sort", h("select", { name: "sort" }, SORTS.map((s) => h("option", { selected: s === productsFilter.sort }, s)))),
  h("button", { type: "submit" }, "Search"));
  const editor = h("div", { id: "product-editor" });
  view.replaceChildren(h("h1", {}, "Products"), search,
    h("button", { type: "button", id: "new-product", onclick: () => productForm(editor, categories, null, () => products(view)) },
      "New product"), editor);
  const page = await attempt(() => get("/products", productsFilter), search);
  if (!page) return;
  const levels = await Promise.all(page.items.map((p) => get(`/products/${p.id}/stock`).catch(() => null)));
  const rows = page.items.map((product, index) => productRow(product, levels[index], names, editor, categories, view));
  view.append(table(["SKU", "Name", "Category", "Price", "Available", "On hand", "Low-stock threshold", ""], rows),
    pager(page, (number) => { productsFilter.page = number; products(view); }));
}

function productRow(product, level, names, editor, categories, view) {
  const stock = h("form", { class: "inline stock", onsubmit: async (event) => {
    event.preventDefault();
    const values = formValues(event.target);
    const body = { on_hand: values.on_hand === "" ? null : Number(values.on_hand) };
    if (values.low_stock_threshold !== "") body.low_stock_threshold = Number(values.low_stock_threshold);
    const saved = await attempt(() => call("PUT", `/products/${product.id}/stock`, body), event.target);
    if (saved) {
      available.textContent = saved.available;
      event.target.querySelector(".saved").textContent = "Saved";
    }
  } },
  h("label", {}, h("input", { name: "on_hand", class: "small", value: level ? level.on_hand : "", "aria-label": "On hand" })),
  h("label", {}, h("input", { name: "low_stock_threshold", class: "small", value: level ? level.low_stock_threshold : "",
    "aria-label": "Low-stock threshold" })),
  h("button", { type: "submit", class: "secondary" }, "Save stock"), h("span", { class: "saved ok" }));
  const available = h("td", { class: "available" }, product.available);
  return h("tr", { "data-sku": product.sku }, h("td", {}, product.sku), h("td", {}, product.name),
    h("td", {}, names[product.category_id] || ""), h("td", {}, `${product.price} ${product.currency}`), available,
    h("td", { colspan: 2 }, stock),
    h("td", {}, h("button", { type: "button", class: "secondary", onclick: () =>
      productForm(editor, categories, product, () => products(view)) }, "Edit"), " ",
    h("button", { type: "button", class: "danger", onclick: async () => {
      if (!confirm(`Delete ${product.sku}?`)) return;
      if ((await attempt(() => call("DELETE", `/products/${product.id}`))) !== undefined) products(view);
    } }, "Delete")));
}

function productForm(editor, categories, product, done) {
  const form = h("form", { class: "card inline", id: "product-form", onsubmit: async (event) => {
    event.preventDefault();
    const values = formValues(event.target);
    const body = { sku: values.sku, name: values.name, price: values.price, description: values.description || null,
      category_id: values.category_id ? Number(values.category_id) : null };
    if (!product) body.initial_stock = values.initial_stock === "" ? 0 : Number(values.initial_stock);
    const saved = await attempt(() => (product ? call("PATCH", `/products/${product.id}`, body)
      : call("POST", "/products", body)), event.target);
    if (saved) { editor.replaceChildren(); done(); }
  } },
  h("h2", { class: "full" }, product ? `Edit ${product.sku}` : "New product"),
  h("label", {}, "SKU", h("input", { name: "sku", value: product?.sku || "" })),
  h("label", {}, "Name", h("input", { name: "name", value: product?.name || "" })),
  h("label", {}, "Price", h("input", { name: "price", class: "small", value: product?.price || "" })),
  h("label", {}, "Category", h("select", { name: "category_id" }, categoryOptions(categories, product?.category_id, "None"))),
  product ? null : h("label", {}, "Initial stock", h("input", { name: "initial_stock", class: "small", value: "0" })),
  h("label", {}, "Description", h("input", { name: "description", value: product?.description || "" })),
  h("button", { type: "submit" }, product ? "Save" : "Create"),
  h("button", { type: "button", class: "secondary", onclick: () => editor.replaceChildren() }, "Close"));
  editor.replaceChildren(form);
}

// ---- categories ----
async function categories(view) {
  const all = await attempt(allCategories);
  if (!all) return;
  const children = (parent) => all.filter((c) => (c.parent_id ?? null) === parent);
  const branch = (parent) => h("ul", { class: "tree" }, children(parent).map((category) => h("li", { "data-id": category.id },
    h("form", { class: "row", onsubmit: async (event) => {
      event.preventDefault();
      const values = formValues(event.target);
      const body = { name: values.name, parent_id: values.parent_id ? Number(values.parent_id) : null };
      if (await attempt(() => call("PATCH", `/categories/${category.id}`, body), event.target)) categories(view);
    } },
    h("label", {}, h("input", { name: "name", value: category.name, "aria-label": "Name" })),
    h("label", {}, h("select", { name: "parent_id", "aria-label": "Parent" },
      categoryOptions(all.filter((c) => c.id !== category.id), category.parent_id, "(top level)"))),
    h("button", { type: "submit", class: "secondary" }, "Save"),
    h("button", { type: "button", class: "danger", onclick: async () => {
      if ((await attempt(() => call("DELETE", `/categories/${category.id}`))) !== undefined) categories(view);
    } }, "Delete")),
    branch(category.id))));
  const create = h("form", { class: "inline", id: "category-form", onsubmit: async (event) => {
    event.preventDefault();
    const values = formValues(event.target);
    const body = { name: values.name, parent_id: values.parent_id ? Number(values.parent_id) : null };
    if (await attempt(() => call("POST", "/categories", body), event.target)) categories(view);
  } },
  h("label", {}, "New category", h("input", { name: "name" })),
  h("label", {}, "Under", h("select", { name: "parent_id" }, categoryOptions(all, null, "(top level)"))),
  h("button", { type: "submit" }, "Create"));
  view.replaceChildren(h("h1", {}, "Categories"), create, h("div", { class: "card", id: "category-tree" }, branch(null)));
}

// ---- orders ----
const ordersFilter = { page: 1, page_size: 20 };

async function orders(view) {
  const open = ordersFilter.open;
  delete ordersFilter.open;
  const filter = h("form", { class: "inline", id: "order-filter", onsubmit: (event) => {
    event.preventDefault();
    Object.assign(ordersFilter, formValues(event.target), { page: 1 });
    orders(view);
  } },
  h("label", {}, "Status", h("select", { name: "status" }, h("option", { value: "" }, "Any"),
    STATUSES.map((s) => h("option", { selected: s === ordersFilter.status }, s)))),
  h("label", {}, "Customer id", h("input", { name: "customer_id", class: "small", value: ordersFilter.customer_id || "" })),
  h("button", { type: "submit" }, "Filter"),
  h("button", { type: "button", class: "secondary", id: "refresh-orders", onclick: () => orders(view) }, "Refresh"));
  const detail = h("div", { id: "order-detail" });
  const { open: _ignored, ...params } = ordersFilter;
  const page = await attempt(() => get("/orders", params), filter);
  view.replaceChildren(h("h1", {}, "Orders"), filter, detail);
  if (!page) return;
  view.insertBefore(table(["Order", "Customer", "Status", "Payment", "Total", "Placed", ""], page.items.map((order) =>
    h("tr", { "data-order": order.id }, h("td", {}, `#${order.id}`), h("td", {}, order.customer_id),
      h("td", { class: "order-status" }, status(order.status)), h("td", {}, order.payment?.status || ""),
      h("td", {}, `${order.total} ${order.currency}`), h("td", {}, when(order.created_at)),
      h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => showOrder(detail, order.id, view) },
        "Open"))))), detail);
  view.insertBefore(pager(page, (number) => { ordersFilter.page = number; orders(view); }), detail);
  if (open) showOrder(detail, open, view);
}

async function showOrder(detail, id, view) {
  const order = await attempt(() => get(`/orders/${id}`));
  if (!order) return;
  const act = (label, run, kind = "") => h("button", { type: "button", class: kind, "data-action": label, onclick: async () => {
    if (await attempt(run)) { await orders(view); showOrder(document.getElementById("order-detail"), id, view); }
  } }, label);
  const address = order.shipping_address || {};
  detail.replaceChildren(h("div", { class: "card", "data-order": order.id },
    h("h2", {}, `Order #${order.id} `, status(order.status)),
    h("p", {}, `Customer ${order.customer_id} · ${order.total} ${order.currency} · placed ${when(order.created_at)}`),
    h("p", {}, `Ship to: ${[address.name, address.line1, address.line2, address.city, address.postal_code, address.country]
      .filter(Boolean).join(", ")}`),
    h("p", { class: "payment" }, `Payment: ${order.payment?.status || "?"}`,
      order.payment?.reference ? ` (reference ${order.payment.reference})` : "",
      order.payment?.failure_reason ? ` — ${order.payment.failure_reason}` : ""),
    h("p", { class: "invoice" }, h("button", { type: "button", class: "secondary", onclick: async (event) => {
      const link = await attempt(() => get(`/orders/${order.id}/invoice`));
      if (link) event.target.replaceWith(h("a", { href: link.url, target: "_blank", rel: "noopener" }, "Invoice (PDF)"));
    } }, "Invoice link")),
    h("div", { class: "toolbar" },
      act("Ship", () => call("PATCH", `/orders/${order.id}/status`, { status: "SHIPPED" })),
      act("Deliver", () => call("PATCH", `/orders/${order.id}/status`, { status: "DELIVERED" })),
      act("Cancel", () => call("POST", `/orders/${order.id}/cancel`, { reason: "cancelled by staff" }), "danger"),
      h("button", { type: "button", class: "secondary", onclick: () => showOrder(detail, id, view) }, "Reload")),
    h("h2", {}, "Lines"),
    table(["SKU", "Name", "Unit price", "Quantity", "Line total"], order.items.map((line) => h("tr", {},
      h("td", {}, line.sku), h("td", {}, line.name), h("td", {}, line.unit_price), h("td", {}, line.quantity),
      h("td", {}, line.line_total)))),
    h("h2", {}, "History"),
    h("table", { class: "history" }, h("tbody", {}, order.history.map((change) => h("tr", {},
      h("td", {}, status(change.status)), h("td", {}, when(change.at)), h("td", {}, change.reason || "")))))));
}

// ---- customers ----
const usersFilter = { page: 1, page_size: 20 };

async function customers(view) {
  const find = h("form", { class: "inline", id: "user-search", onsubmit: (event) => {
    event.preventDefault();
    Object.assign(usersFilter, formValues(event.target), { page: 1 });
    customers(view);
  } },
  h("label", {}, "Email", h("input", { name: "email", value: usersFilter.email || "", placeholder: "part of an address" })),
  h("button", { type: "submit" }, "Find"));
  const page = await attempt(() => get("/users", usersFilter), find);
  view.replaceChildren(h("h1", {}, "Customers"), find);
  if (!page) return;
  view.append(table(["Id", "Email", "Name", "Phone", "Role", "Since", ""], page.items.map((user) => h("tr", {},
    h("td", {}, user.id), h("td", {}, user.email), h("td", {}, user.name), h("td", {}, user.phone || ""),
    h("td", {}, user.role), h("td", {}, when(user.created_at)),
    h("td", {}, h("a", { href: "#orders", onclick: () => { Object.assign(ordersFilter, { customer_id: user.id, page: 1 }); } },
      "Orders"))))),
  pager(page, (number) => { usersFilter.page = number; customers(view); }));
}

export const screens = { overview, products, categories, orders, customers };
export { showError };
