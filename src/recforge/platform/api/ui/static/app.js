// The shell shared by every page: the token, the API call, DOM building and the hash router.
// Data is only ever put into the page as text (textContent / attribute values), never as HTML.

const TOKEN_KEY = "recforge.token";
const REFRESH_MS = 4000;

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** GET (or send ``body`` with ``method``) ``path`` of the REST API with the bearer token. */
export async function api(path, { method = "GET", body, auth = token() } = {}) {
  const headers = { Accept: "application/json" };
  if (auth) headers.Authorization = `Bearer ${auth}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401 && auth === token()) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = "#/login";
  }
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new ApiError(r.status, detail);
  }
  return r.status === 204 ? null : r.json();
}

/** An element with attributes (``on*`` functions become listeners) and children (strings become
 * text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace every child of ``node`` with ``children``. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function stateBadge(state) {
  const s = state ?? "";
  return el("span", { class: `state state-${s.replace(/[^A-Za-z_]/g, "")}`, "data-state": s }, s);
}

export function time(t) {
  if (t === null || t === undefined) return "";
  return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function ago(t) {
  if (!t) return "";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

/** A table: ``cols`` is a list of [header, cell(row) -> node|string, className?]. */
export function table(cols, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, cols.map(([h, , cls]) => el("th", { class: cls }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, cols.map(([, f, cls]) => el("td", { class: cls }, f(r)))))));
}

export function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

export function errorBox(err) {
  return el("p", { class: "error", role: "alert" }, err instanceof Error ? err.message : String(err));
}

/** A button that POSTs to ``path``, then calls ``after``; a refusal is shown after ``where``. */
export function postButton(id, label, path, where, after) {
  return el("button", { id, type: "button", onclick: async () => {
    try { await api(path, { method: "POST" }); await after(); } catch (err) { where.append(errorBox(err)); }
  } }, label);
}

export function resources(r) {
  if (!r) return "";
  const parts = [];
  for (const [k, v] of Object.entries(r)) {
    if (k === "extended") for (const [x, y] of Object.entries(v ?? {})) parts.push(`${x} ${y}`);
    else if (v !== null && v !== undefined && v !== 0) parts.push(k === "memory" ? `memory ${v} MiB` : `${k} ${v}`);
  }
  return parts.join(", ");
}

// -- the router -----------------------------------------------------------------------------
// "#/jobs/12" -> page "job" with {id: "12"}. Each page module exports ``render(main, params)``
// and may return a function the router calls to refresh it (every REFRESH_MS while shown).
const ROUTES = [
  [/^#\/login$/, "login"],
  [/^#\/jobs$/, "jobs"],
  [/^#\/jobs\/(?<id>\d+)$/, "job"],
  [/^#\/dags$/, "dags"],
  [/^#\/dags\/(?<id>\d+)$/, "dag"],
  [/^#\/queues$/, "queues"],
  [/^#\/schedules$/, "schedules"],
  [/^#\/schedules\/(?<id>\d+)$/, "schedule"],
  [/^#\/services$/, "services"],
];
const NAV = { job: "jobs", dag: "dags", schedule: "schedules" };
let timer = null;
let generation = 0;

async function route() {
  clearInterval(timer);
  const gen = ++generation;
  const main = document.getElementById("main");
  const hash = location.hash || "#/jobs";
  let page = null;
  let params = {};
  for (const [re, name] of ROUTES) {
    const m = re.exec(hash);
    if (m) { page = name; params = { ...m.groups }; break; }
  }
  if (page !== "login" && !token()) { location.hash = "#/login"; return; }
  await header(page);
  if (page === null) { fill(main, el("h1", {}, "Not found"), el("p", {}, `No page at ${hash}.`)); return; }
  const mod = await import(`./pages/${page}.js`);
  if (gen !== generation) return;
  fill(main);
  let refresh = null;
  try {
    refresh = await mod.render(main, params);
  } catch (err) {
    if (gen === generation) main.append(errorBox(err));
  }
  if (typeof refresh === "function" && gen === generation) {
    timer = setInterval(() => {
      if (document.visibilityState === "visible") refresh().catch((err) => console.warn(err));
    }, REFRESH_MS);
  }
}

let whoami = null;
async function header(page) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const logout = document.getElementById("logout");
  const logged = Boolean(token()) && page !== "login";
  nav.hidden = !logged;
  logout.hidden = !logged;
  if (!logged) { whoami = null; fill(who); return; }
  if (whoami === null) {
    try { whoami = await api("/whoami"); } catch { return; }
  }
  fill(who, `${whoami.user} · group ${whoami.group}${whoami.admin ? " · admin" : ""}`);
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.dataset.page === (NAV[page] ?? page));
}

/** Keep ``t`` as this tab's token (sessionStorage: gone when the tab closes). */
export function login(t, who) {
  sessionStorage.setItem(TOKEN_KEY, t);
  whoami = who;
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  whoami = null;
  location.hash = "#/login";
}

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
route();
