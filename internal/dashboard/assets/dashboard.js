// Ferry's dashboard: renders the state the core sends over Server-Sent
// Events (api/events), and posts the CLI's actions with the CSRF header.
// Data goes into the page only as text (never as HTML): request paths and
// error messages come from outside.
"use strict";

const CSRF = { "X-Ferry-Dashboard": "1" };
let canAct = false;
let source = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function bytes(n) {
  if (!n) return "–";
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

function duration(sec) {
  sec = Math.max(0, sec);
  if (sec < 1) return Math.round(sec * 1000) + " ms";
  if (sec < 60) return sec.toFixed(1) + " s";
  if (sec < 3600) return Math.floor(sec / 60) + " min " + Math.floor(sec % 60) + " s";
  if (sec < 86400) return Math.floor(sec / 3600) + " h " + Math.floor((sec % 3600) / 60) + " min";
  return Math.floor(sec / 86400) + " d " + Math.floor((sec % 86400) / 3600) + " h";
}

function message(text, isError) {
  const m = document.getElementById("message");
  m.hidden = !text;
  m.textContent = text || "";
  m.className = isError ? "error" : "";
}

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: Object.assign({ "Content-Type": "application/json" }, CSRF),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error(data.error || r.status + " " + r.statusText);
  return data;
}

async function action(what, path) {
  try {
    const res = await post(path);
    message(what + ": " + (res.generation !== undefined ? "started, generation " + res.generation : "done"), false);
  } catch (e) {
    message(what + ": " + e.message, true);
  }
}

function stateBadge(s) {
  const cls = { serving: "ok", out_of_band: "warn", retiring: "warn", stopping: "bad", gone: "bad" }[s] || "";
  return el("span", { class: "badge " + cls }, s);
}

function renderApp(a) {
  const name = a.name;
  const enc = encodeURIComponent(name);
  const procs = a.processes || [];
  const busy = procs.filter((p) => p.sessions > 0).length;
  const head = el("div", { class: "app-head" },
    el("h3", {}, name),
    a.restarting ? el("span", { class: "badge warn" }, "restarting") : null,
    a.shutting_down ? el("span", { class: "badge bad" }, "shutting down") : null,
    el("span", { class: "facts" },
      el("b", {}, a.type), " · ", a.spawn_method, " spawning · generation ", el("b", { "data-field": "generation" }, a.generation),
      " · processes ", el("b", { "data-field": "processes" }, procs.length), "/", a.max,
      " (", busy, " busy", a.spawning ? ", " + a.spawning + " spawning" : "", ")",
      " · queue ", el("b", { "data-field": "queue" }, a.queued),
      a.preloader_pid ? " · preloader " + a.preloader_pid : ""),
    el("button", { type: "button", "data-action": "restart", disabled: !canAct, title: canAct ? "" : "needs the admin token",
      onclick: () => action("restart " + name, "api/apps/" + enc + "/restart") }, "Restart"),
    el("button", { type: "button", "data-action": "rolling-restart", disabled: !canAct, title: canAct ? "" : "needs the admin token",
      onclick: () => action("rolling restart " + name, "api/apps/" + enc + "/restart?rolling=true") }, "Rolling restart"));
  const rows = procs.map((p) => el("tr", { "data-pid": p.pid },
    el("td", { class: "num" }, p.pid),
    el("td", {}, stateBadge(p.state), p.reason ? " " + p.reason : ""),
    el("td", { class: "num" }, p.generation),
    el("td", { class: "num" }, p.sessions + "/" + (p.concurrency || "∞")),
    el("td", { class: "num" }, p.processed),
    el("td", { class: "num" }, p.cpu_percent.toFixed(1) + " %"),
    el("td", { class: "num" }, bytes(p.pss_bytes)),
    el("td", { class: "num" }, bytes(p.rss_bytes)),
    el("td", { class: "num" }, duration(p.uptime_seconds)),
    el("td", {}, el("button", { type: "button", "data-action": "detach", disabled: !canAct || ["retiring", "stopping", "gone"].includes(p.state),
      onclick: () => action("detach " + p.pid, "api/apps/" + enc + "/processes/" + p.pid + "/detach") }, "Detach"))));
  const table = el("table", { class: "processes" },
    el("thead", {}, el("tr", {}, ["pid", "state", "gen", "busy", "requests", "CPU", "PSS", "RSS", "uptime", ""].map((h, i) =>
      el("th", { class: i > 1 && i < 9 && i !== 1 ? "num" : "" }, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 10, class: "empty" }, "no processes"))));
  const extra = [];
  if (a.turbocache) {
    const c = a.turbocache;
    const looked = c.hits + c.misses;
    extra.push(el("p", { class: "facts", "data-field": "turbocache" }, "turbocache: ",
      el("b", {}, looked ? Math.round((100 * c.hits) / looked) + " % hits" : "no lookups yet"),
      " · ", c.hits, " hits, ", c.misses, " misses, ", c.entries, " entries, ", bytes(c.bytes),
      ", ", c.evictions, " evictions, ", c.coalesced, " coalesced"));
  }
  if (a.last_spawn_error) extra.push(el("p", { class: "error-text" }, "last spawn error: " + a.last_spawn_error));
  if (a.deploy_error) extra.push(el("p", { class: "error-text" }, "deploy error: " + a.deploy_error));
  return el("div", { class: "app", "data-app": name }, head, table, extra);
}

function fillTable(id, rows, cols) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: cols, class: "empty" }, "none"))]));
}

function render(st) {
  document.getElementById("server").textContent = "version " + st.server.version + " · pid " + st.server.pid +
    " · up " + duration(st.server.uptime_seconds) + (st.ready ? "" : " · draining");
  document.getElementById("apps").replaceChildren(...st.apps.map(renderApp));
  fillTable("requests", (st.requests || []).map((r) => el("tr", {},
    el("td", {}, r.app), el("td", {}, r.method), el("td", { class: "wrap" }, r.path), el("td", {}, r.client),
    el("td", {}, r.state), el("td", { class: "num" }, r.pid || "–"),
    el("td", { class: "num" }, duration(r.age_ms / 1000)))), 7);
  fillTable("spawn-errors", (st.spawn_errors || []).map((e) => el("tr", {},
    el("td", {}, new Date(e.at).toLocaleString()), el("td", {}, e.app), el("td", { class: "num" }, e.failures),
    el("td", { class: "wrap error-text" }, e.error))), 4);
  // Certificates of automatic HTTPS (--domain); none: the section stays hidden.
  const certs = st.certificates || [];
  document.getElementById("certificates-section").hidden = certs.length === 0;
  fillTable("certificates", certs.map((c) => el("tr", { "data-domain": c.domain },
    el("td", {}, c.domain, c.on_demand ? " (on demand)" : ""),
    el("td", {}, el("span", { class: "badge " + ({ valid: "ok", renewing: "warn", obtaining: "warn" }[c.state] || "bad") }, c.state)),
    el("td", {}, c.not_after ? new Date(c.not_after).toLocaleString() : "–"),
    el("td", { class: "num" + (c.not_after && c.days_left < 14 ? " error-text" : "") }, c.not_after ? c.days_left.toFixed(1) : "–"),
    el("td", {}, c.issuer || "–"),
    el("td", {}, c.ocsp_stapled ? "yes" : "no"),
    el("td", { class: "num" }, c.failures),
    el("td", { class: "wrap error-text" }, c.last_error || ""))), 8);
  document.body.dataset.updated = st.at;
}

function live(on, text) {
  const b = document.getElementById("live");
  b.className = "badge " + (on ? "ok" : "off");
  b.textContent = text;
}

async function start(retried) {
  if (source) { source.close(); source = null; }
  let r;
  try {
    r = await fetch("api/state", { credentials: "same-origin" });
  } catch (e) {
    live(false, "core unreachable");
    setTimeout(() => start(), 3000);
    return;
  }
  const data = await r.json().catch(() => ({}));
  const login = document.getElementById("login");
  if (r.status === 401 && !retried) {
    // A stale token's cookie has just been dropped: look again without it.
    return start(true);
  }
  if (!r.ok) {
    live(false, "locked");
    login.hidden = false;
    document.getElementById("logout").hidden = true;
    message(data.error || r.statusText, true);
    return;
  }
  canAct = data.viewer && data.viewer.can_act;
  login.hidden = canAct;
  document.getElementById("logout").hidden = !data.viewer || data.viewer.token === "none";
  document.getElementById("token").placeholder = canAct ? "" : "admin.token to restart and detach";
  render(data);
  source = new EventSource("api/events");
  source.addEventListener("state", (ev) => { live(true, "live"); render(JSON.parse(ev.data)); });
  source.onerror = () => {
    live(false, "reconnecting…");
    if (source.readyState === EventSource.CLOSED) setTimeout(() => start(), 3000);
  };
}

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("token");
  try {
    const res = await post("api/login", { token: input.value });
    input.value = "";
    message(res.can_act ? "admin token accepted: actions enabled" : "read-only token accepted", false);
    start(true);
  } catch (e) {
    message(e.message, true);
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  try { await post("api/logout"); } catch (e) { /* the cookie is gone either way */ }
  message("token forgotten", false);
  start(true);
});

start();
