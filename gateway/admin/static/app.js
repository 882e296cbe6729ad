// The admin panel: log in with an admin account, then one screen at a time (the hash names it).
import { ApiError, call, onUnauthorized, setToken, token } from "./api.js";
import { screens } from "./screens.js";
import { clearError, formValues, h } from "./ui.js";

const $ = (id) => document.getElementById(id);

function showLogin(message = "") {
  setToken(null);
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
}

async function showApp() {
  const me = await call("GET", "/auth/me");
  if (me.role !== "admin") {
    showLogin(`${me.email} is a customer account, not staff: the admin panel needs an admin account.`);
    return;
  }
  $("who").textContent = me.email;
  $("login").hidden = true;
  $("app").hidden = false;
  route();
}

async function route() {
  if ($("app").hidden) return;
  const name = location.hash.slice(1) in screens ? location.hash.slice(1) : "overview";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.screen === name);
  clearError();
  const view = $("view");
  view.replaceChildren(h("p", {}, "Loading…"));
  await screens[name](view);
}

onUnauthorized(() => showLogin("Your session has ended: please log in again."));

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { email, password } = formValues(event.target);
  $("login-error").textContent = "";
  try {
    const answer = await call("POST", "/auth/token", { email, password }, { auth: false });
    setToken(answer.access_token);
    event.target.reset();
    await showApp();
  } catch (error) {
    showLogin(error instanceof ApiError ? error.message : String(error));
  }
});

$("logout").addEventListener("click", () => { showLogin(); location.hash = ""; });
window.addEventListener("hashchange", route);

if (token()) showApp().catch(() => showLogin()); else showLogin();
