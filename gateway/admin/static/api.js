// The public HTTP API with the admin's bearer token (kept in sessionStorage, never in a cookie).
const KEY = "pos-admin-token";
let unauthorized = () => {};
let pending = 0;

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.status = status;
    this.code = error.code;
    this.details = error.details || {};
  }
}

export const token = () => sessionStorage.getItem(KEY);
export const setToken = (value) => (value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY));
export const onUnauthorized = (handler) => { unauthorized = handler; };

function busy(delta) {
  pending += delta;
  document.getElementById("busy").hidden = pending === 0;
}

export async function call(method, path, body, { params, auth = true } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  if (auth && token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  busy(1);
  try {
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new ApiError(0, { error: { message: "The server cannot be reached." } });
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401 && auth) unauthorized(error);
      throw error;
    }
    return data;
  } finally {
    busy(-1);
  }
}

export const get = (path, params) => call("GET", path, undefined, { params });
