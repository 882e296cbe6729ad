// Small DOM helpers: elements, errors shown in words (422 field messages beside their fields), pagers.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

export function showError(error, form) {
  const banner = document.getElementById("error");
  for (const old of document.querySelectorAll(".field-error")) old.remove();
  let placed = false;
  if (form && error.details) {
    for (const [field, messages] of Object.entries(error.details)) {
      const input = form.elements.namedItem(field);
      if (input && input.closest) {
        input.closest("label").append(h("span", { class: "field-error" }, [].concat(messages).join(" ")));
        placed = true;
      }
    }
  }
  banner.textContent = placed ? `${error.message} See the fields marked.` : error.message;
  banner.hidden = false;
}

export function clearError() {
  const banner = document.getElementById("error");
  banner.hidden = true;
  banner.textContent = "";
  for (const old of document.querySelectorAll(".field-error")) old.remove();
}

// Runs an API action; its error goes to the page in words.
export async function attempt(action, form) {
  clearError();
  try {
    return await action();
  } catch (error) {
    if (error.status === 401) return undefined;
    showError(error, form);
    return undefined;
  }
}

export function formValues(form) {
  const values = {};
  for (const [name, value] of new FormData(form)) values[name] = typeof value === "string" ? value.trim() : value;
  return values;
}

export function pager(page, onPage) {
  const pages = Math.max(1, Math.ceil(page.total / page.page_size));
  return h("div", { class: "pager" },
    h("button", { type: "button", class: "secondary", disabled: page.page <= 1, onclick: () => onPage(page.page - 1) },
      "‹ Previous"),
    h("span", { class: "page-info" }, `Page ${page.page} of ${pages} · ${page.total} in all`),
    h("button", { type: "button", class: "secondary", disabled: page.page >= pages,
      onclick: () => onPage(page.page + 1) }, "Next ›"));
}

export function table(headings, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, headings.map((text) => h("th", {}, text)))),
    h("tbody", {}, rows));
}

export const status = (value) => h("span", { class: `status ${value}` }, value);
export const when = (moment) => (moment ? moment.replace("T", " ").replace("Z", " UTC") : "");
