// doc-serve's search page: login, search as you type, freshness, the project picker.
// The reader (a rendered document) is in doc.js.
//
// The DOM is built with createElement and textContent only: the server's CSP enforces
// Trusted Types, so any HTML string sink would throw. Nothing from a reply is ever
// parsed as HTML or set as an element id. See README "Search page".

import { renderDoc, lineTarget, markWords } from "./doc.js";

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const SESSION_KEY = "doc-serve.session";
const LOGGED_OUT = new Set(["session_expired", "bad_token", "missing_token"]);
const LOGIN_WHY = {
  code_used: "That code was already used: codes work once.",
  code_expired: "That code has expired: codes are valid for a short time.",
  invalid_code: "That code is not valid here.",
  session_expired: "Your session has expired.",
  bad_token: "Your session is no longer valid.",
  missing_token: "Your session is no longer valid.",
};
const LIMIT = 20;

const ui = {};
let base = ""; // "" or "/projects/{id}"
let shared = false;
let fresh = null; // the last freshness footer seen
let seq = 0; // the latest search; an answer for an older one is dropped
let ctl = null; // aborts the search in flight when a newer one starts
let lastTook = 0;
let hits = [];
let sel = -1;
let next = null; // next_offset of the shown answer
let reader = null; // {path, outline, line, index}
let pollTimer = 0;
let prefixes = new Set(); // directories seen in hits, for the prefix box

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "";
  }
}

// ---- session and API ----------------------------------------------------------

function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    if (s && typeof s.session === "string" && s.expires_at * 1000 > Date.now()) return s;
  } catch (_) {
    /* a damaged entry is no session */
  }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

async function api(path, signal) {
  const s = session();
  if (!s) throw new ApiError(401, { code: "session_expired", message: "no session" });
  const r = await fetch(base + path, {
    headers: { Authorization: `Bearer ${s.session}` },
    signal,
    cache: "no-store",
  });
  const body = await r.json().catch(() => ({}));
  if (r.ok) return body;
  if (r.status === 401 && LOGGED_OUT.has(body.code)) {
    sessionStorage.removeItem(SESSION_KEY);
    showLogin(body.code);
  }
  throw new ApiError(r.status, body);
}

async function login(code) {
  const r = await fetch("/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code }),
    cache: "no-store",
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) return body.code || "invalid_code";
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(body));
  return "";
}

function showLogin(why) {
  stopPolling();
  document.body.classList.add("logged-out");
  ui.login.hidden = false;
  ui.loginWhy.textContent = Object.hasOwn(LOGIN_WHY, why) ? LOGIN_WHY[why] : "";
}

// ---- hash state: #q=&prefix=&mode=&project=&doc=&sec= --------------------------

function readHash() {
  return new URLSearchParams(location.hash.slice(1));
}

function hashFor(changes) {
  const h = readHash();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") h.delete(k);
    else h.set(k, String(v));
  }
  const s = h.toString();
  return s ? `#${s}` : location.pathname;
}

/** Records the state; `push` makes a history entry (opening a document). */
function setHash(changes, push) {
  const url = hashFor(changes);
  if (push) location.hash = url.startsWith("#") ? url : "";
  else history.replaceState(null, "", url);
}

// ---- freshness -----------------------------------------------------------------

const n = (x) => Number(x || 0).toLocaleString("en");

function showFresh(ix) {
  if (!ix) return;
  const was = fresh;
  fresh = ix;
  const parts = [`${n(ix.files)} files`, `${n(ix.chunks)} sections`];
  const p = ix.progress;
  if (ix.indexing) {
    parts.push(p ? `indexing ${n(p[0])} / ${n(p[1])}` : "indexing");
    ui.progress.hidden = false;
    if (p && p[1] > 0) {
      ui.progress.max = p[1];
      ui.progress.value = p[0];
    } else {
      ui.progress.removeAttribute("value");
    }
  } else {
    ui.progress.hidden = true;
    if (ix.watcher) parts.push(ix.watcher);
  }
  if (ix.pending_changes) {
    const f = ix.pending_files;
    parts.push(f ? `${n(f)} changes pending` : "changes pending");
  }
  const e = ix.embedding;
  if (e && e.embedded && e.embedded[0] < e.embedded[1]) {
    const pct = Math.floor((100 * e.embedded[0]) / e.embedded[1]);
    parts.push(`embedding ${pct} % (${e.model})`);
  }
  ui.fresh.textContent = parts.join(" · ");
  ui.error.textContent = ix.last_error || (e && e.error) || "";
  ui.error.title = ui.error.textContent;
  setModes(e);
  if (busy(was) && !busy(ix) && ui.q.value.trim()) search(); // the answer may have grown
  schedulePoll();
}

/** Semantic and hybrid need a model that works. */
function setModes(e) {
  const why = !e ? "no embedding_model is set" : e.error ? `the model cannot be used: ${e.error}` : "";
  for (const o of ui.mode.options) {
    if (o.value === "semantic" || o.value === "hybrid") {
      o.disabled = !!why;
      o.title = why;
    }
  }
  if (why && ui.mode.selectedOptions[0]?.disabled) ui.mode.value = "";
}

const busy = (ix) => !!ix && (ix.indexing || ix.pending_changes || !!ix.embedding?.embedding);

// Polls /status only while the index is changing and the tab is visible: every request
// counts as activity, so a forgotten tab must not keep a resident from its idle exit.
function schedulePoll() {
  if (pollTimer || !busy(fresh) || document.visibilityState !== "visible") return;
  pollTimer = setTimeout(async () => {
    pollTimer = 0;
    try {
      showFresh((await api("/status")).index);
    } catch (e) {
      ui.error.textContent = e.message;
    }
  }, 1000);
}

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = 0;
}

// ---- search --------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs the search in the boxes; `t0` is the keystroke's time, for the measures. */
async function search(t0, offset = 0) {
  const my = ++seq;
  if (ctl) ctl.abort();
  ctl = new AbortController();
  const signal = ctl.signal;
  const q = ui.q.value.trim();
  const prefix = ui.prefix.value.trim();
  const mode = ui.mode.value;
  if (!offset) setHash({ q, prefix, mode });
  if (!q) {
    showHits(null);
    return;
  }
  // No fixed debounce: an answer takes well under a frame. Only a slow one (a model
  // loading, a huge corpus) makes the next keystroke wait a little.
  if (lastTook > 30) {
    await sleep(Math.min(lastTook, 150));
    if (my !== seq) return;
  }
  const params = new URLSearchParams({ q, limit: LIMIT, wait: 0 });
  if (offset) params.set("offset", offset);
  if (prefix) params.set("path_prefix", prefix);
  if (mode) params.set("mode", mode);
  let reply;
  try {
    reply = await api(`/query?${params}`, signal);
  } catch (e) {
    if (e.name === "AbortError" || my !== seq) return;
    if (e.status !== 401) {
      ui.summary.textContent = "";
      ui.error.textContent = e.message;
    }
    return;
  }
  if (my !== seq) return;
  lastTook = reply.took_ms || 0;
  ui.error.textContent = fresh?.last_error || "";
  showHits(reply, offset > 0);
  showFresh(reply.index);
  if (t0 !== undefined) measure(t0);
}

// What bench/page.py reads: keystroke to results in the DOM, and to the next paint.
function measure(t0) {
  performance.measure("ds:dom", { start: t0, end: performance.now() });
  requestAnimationFrame(() =>
    setTimeout(() => performance.measure("ds:paint", { start: t0, end: performance.now() })),
  );
}

function showHits(reply, append) {
  if (!reply) {
    hits = [];
    next = null;
    ui.results.replaceChildren();
    ui.summary.textContent = "";
    ui.more.hidden = true;
    select(-1);
    return;
  }
  const frag = document.createDocumentFragment();
  const start = append ? hits.length : 0;
  reply.hits.forEach((h, i) => frag.append(hitItem(h, start + i)));
  hits = append ? hits.concat(reply.hits) : reply.hits.slice();
  if (append) ui.results.append(frag);
  else ui.results.replaceChildren(frag);
  next = reply.next_offset ?? null;
  ui.more.hidden = next === null;
  const s = [`${n(reply.total_matches)} matches`, reply.mode, `${(reply.took_ms || 0).toFixed(1)} ms`];
  if (reply.truncated) s.push("truncated");
  ui.summary.textContent = reply.hits.length || append ? s.join(" · ") : `no results · ${s.slice(1).join(" · ")}`;
  if (!append) select(hits.length ? 0 : -1);
  learnPrefixes(reply.hits);
}

function hitItem(h, i) {
  const li = el("li", "hit");
  li.id = `hit-${i}`; // our own counter, never from the reply
  li.setAttribute("role", "option");
  const head = el("div", "hit-head");
  head.append(el("span", "path", `${h.path}:${h.line_start}`));
  if (h.headings && h.headings.length) head.append(el("span", "trail", h.headings.join(" › ")));
  li.append(head, snippet(h.snippet || "", h.highlights || []));
  li.addEventListener("click", () => openHit(i));
  return li;
}

/** The snippet with its highlights in <mark>; offsets count Unicode scalar values. */
function snippet(text, ranges) {
  const div = el("div", "snippet");
  const cps = Array.from(text);
  let at = 0;
  for (const [a0, b0] of ranges) {
    const a = Math.max(0, Math.min(a0 | 0, cps.length));
    const b = Math.max(0, Math.min(b0 | 0, cps.length));
    if (a < at || b <= a) continue; // overlapping or out of order: skipped
    if (a > at) div.append(cps.slice(at, a).join(""));
    div.append(el("mark", "", cps.slice(a, b).join("")));
    at = b;
  }
  if (at < cps.length) div.append(cps.slice(at).join(""));
  return div;
}

function learnPrefixes(list) {
  const add = [];
  for (const h of list) {
    const parts = String(h.path).split("/");
    for (let k = 1; k < parts.length && prefixes.size < 300; k++) {
      const p = `${parts.slice(0, k).join("/")}/`;
      if (!prefixes.has(p)) {
        prefixes.add(p);
        add.push(el("option", "", undefined));
        add[add.length - 1].value = p;
      }
    }
  }
  if (add.length) ui.prefixes.append(...add);
}

/** Marks hit `i` as chosen; `show` scrolls it into view (keys, not a new answer). */
function select(i, show) {
  const items = ui.results.children;
  if (sel >= 0 && items[sel]) items[sel].removeAttribute("aria-selected");
  sel = i;
  if (i >= 0 && items[i]) {
    items[i].setAttribute("aria-selected", "true");
    ui.q.setAttribute("aria-activedescendant", items[i].id);
    if (show) items[i].scrollIntoView({ block: "nearest" });
  } else {
    ui.q.removeAttribute("aria-activedescendant");
  }
}

// ---- reader --------------------------------------------------------------------

function openHit(i) {
  const h = hits[i];
  if (!h) return;
  select(i);
  setHash({ doc: h.path, sec: h.id, line: h.line_start }, true);
}

const encodePath = (p) => String(p).split("/").map(encodeURIComponent).join("/");
// An indexed path has no such segment; the URL parser would resolve one away (even as
// %2E%2E) and the request would reach another route.
const badPath = (p) => String(p).split("/").some((s) => /^(\.|%2e){1,2}$/i.test(s));

async function showDoc(path, sec, line) {
  ui.reader.hidden = false;
  document.body.classList.add("reading");
  if (badPath(path)) {
    ui.docPath.textContent = path;
    ui.docBody.replaceChildren(el("p", "error", "not a document path"));
    ui.outline.replaceChildren();
    reader = null;
    return;
  }
  if (!reader || reader.path !== path) {
    ui.docPath.textContent = path;
    ui.docBody.replaceChildren(el("p", "muted", "loading…"));
    ui.outline.replaceChildren();
    const q = sec ? `?${new URLSearchParams({ section: sec })}` : "";
    let doc;
    try {
      doc = await api(`/render/${encodePath(path)}${q}`);
    } catch (e) {
      ui.docBody.replaceChildren(el("p", "error", e.message));
      reader = null;
      return;
    }
    reader = { path, outline: doc.outline || [], index: -1 };
    ui.docBody.replaceChildren(renderDoc(doc, docHref));
    if (doc.truncated) ui.docBody.prepend(el("p", "muted", "A large file: only this section is shown."));
    ui.outline.replaceChildren(outlineList(reader.outline));
  }
  const k = reader.outline.findIndex((o) => o.id === sec);
  const target = line ? Number(line) : k >= 0 ? reader.outline[k].line_start : 1;
  goToLine(target, k >= 0 ? k : sectionAt(target));
  const hit = hits.find((h) => h.id === sec);
  if (hit) markWords(ui.docBody, hitWords(hit));
}

const docHref = (doc, anchor) => hashFor({ doc, sec: anchor ? `${doc}#${anchor}` : null, line: null });

function hitWords(h) {
  const cps = Array.from(h.snippet || "");
  return [...new Set((h.highlights || []).map(([a, b]) => cps.slice(a, b).join("").toLowerCase()))];
}

function outlineList(outline) {
  const ul = el("ul");
  outline.forEach((o, k) => {
    const li = el("li", `l${Math.min(6, Math.max(1, o.level | 0))}`);
    const b = el("button", "", o.title);
    b.type = "button";
    b.addEventListener("click", () => goToSection(k));
    li.append(b);
    ul.append(li);
  });
  return ul;
}

const sectionAt = (line) => {
  let k = -1;
  reader.outline.forEach((o, i) => {
    if (o.line_start <= line) k = i;
  });
  return k;
};

function goToLine(line, k) {
  const t = lineTarget(ui.docBody, line);
  if (t) {
    t.scrollIntoView({ block: "start" });
    t.classList.remove("flash");
    void t.offsetWidth; // restart the animation
    t.classList.add("flash");
  }
  reader.index = k;
  const items = ui.outline.querySelectorAll("li");
  items.forEach((li, i) => li.classList.toggle("current", i === k));
  if (items[k]) items[k].scrollIntoView({ block: "nearest" });
}

function goToSection(k) {
  const o = reader && reader.outline[k];
  if (!o) return;
  setHash({ sec: o.id, line: null });
  goToLine(o.line_start, k);
}

function closeDoc() {
  ui.reader.hidden = true;
  document.body.classList.remove("reading");
  ui.q.focus();
}

// ---- the hash drives what is shown ---------------------------------------------

async function applyHash() {
  const h = readHash();
  const project = h.get("project") || "";
  if (shared && project && base !== `/projects/${project}`) await useProject(project);
  let rerun = false;
  for (const [box, key] of [
    [ui.q, "q"],
    [ui.prefix, "prefix"],
    [ui.mode, "mode"],
  ]) {
    const v = h.get(key) || "";
    if (box.value !== v) {
      box.value = v;
      rerun = true;
    }
  }
  if (rerun || (!hits.length && ui.q.value.trim())) await search();
  const doc = h.get("doc");
  if (doc) await showDoc(doc, h.get("sec") || "", h.get("line"));
  else if (!ui.reader.hidden) closeDoc();
}

// ---- the shared daemon's projects ----------------------------------------------

async function loadProjects() {
  const list = (await api("/projects")).projects || [];
  ui.project.replaceChildren(
    ...list.map((p) => {
      const o = el("option", "", String(p.root));
      o.value = p.id;
      if (p.error) {
        o.disabled = true;
        o.title = p.error;
      }
      return o;
    }),
  );
  ui.project.hidden = false;
  const want = readHash().get("project");
  const pick = list.find((p) => p.id === want && !p.error) || list.find((p) => !p.error);
  if (!pick) {
    ui.error.textContent = "no project is registered: run `doc-serve open` in a project";
    return;
  }
  await useProject(pick.id);
}

async function useProject(id) {
  ui.project.value = id;
  base = `/projects/${encodeURIComponent(id)}`;
  setHash({ project: id });
  reader = null;
  showHits(null);
  prefixes = new Set();
  ui.prefixes.replaceChildren();
  fresh = null;
  stopPolling();
  try {
    showFresh((await api("/status")).index);
  } catch (e) {
    ui.error.textContent = e.message;
  }
}

// ---- keys ----------------------------------------------------------------------

function onKey(e) {
  if (e.isComposing || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLSelectElement;
  const reading = !ui.reader.hidden;
  if (e.key === "/" && !typing) {
    e.preventDefault();
    if (reading) setHash({ doc: null, sec: null, line: null }, true);
    ui.q.focus();
    ui.q.select();
  } else if (e.key === "Escape") {
    if (reading) setHash({ doc: null, sec: null, line: null }, true);
    else if (t === ui.q && ui.q.value) {
      ui.q.value = "";
      search();
    } else ui.q.blur();
  } else if (reading && !typing && (e.key === "[" || e.key === "]")) {
    e.preventDefault();
    goToSection((reader?.index ?? -1) + (e.key === "]" ? 1 : -1));
  } else if (!reading && (t === ui.q || t === document.body || ui.results.contains(t))) {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const d = e.key === "ArrowDown" ? 1 : -1;
      if (hits.length) select(Math.max(0, Math.min(hits.length - 1, sel + d)), true);
    } else if (e.key === "Enter" && sel >= 0) {
      e.preventDefault();
      openHit(sel);
    }
  }
}

// ---- start ---------------------------------------------------------------------

async function start() {
  for (const [k, id] of Object.entries({
    q: "q", prefix: "prefix", prefixes: "prefixes", mode: "mode", project: "project",
    fresh: "fresh", progress: "progress", error: "error", login: "login",
    loginWhy: "login-why", main: "main", summary: "summary", results: "results",
    more: "more", reader: "reader", outline: "outline", docPath: "doc-path",
    docBody: "doc-body", close: "close",
  })) ui[k] = $(id);

  // A code from `doc-serve open`: taken out of the address at once, then redeemed.
  const h = readHash();
  const code = h.get("code");
  if (code) {
    setHash({ code: null });
    const why = await login(code);
    if (why) return showLogin(why);
  }
  const s = session();
  if (!s) return showLogin(""); // no request at all without a session

  ui.q.addEventListener("input", (e) => search(e.timeStamp));
  ui.prefix.addEventListener("input", (e) => search(e.timeStamp));
  ui.mode.addEventListener("change", () => search());
  ui.more.addEventListener("click", () => next !== null && search(undefined, next));
  ui.close.addEventListener("click", () => setHash({ doc: null, sec: null, line: null }, true));
  ui.project.addEventListener("change", () => {
    setHash({ project: ui.project.value, doc: null, sec: null, line: null });
    useProject(ui.project.value).then(() => search());
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", schedulePoll);
  window.addEventListener("hashchange", applyHash);

  try {
    const st = await api("/status");
    shared = st.mode === "shared";
    if (shared) await loadProjects();
    else showFresh(st.index);
  } catch (e) {
    if (e.status !== 401) ui.error.textContent = e.message;
    return;
  }
  await applyHash();
  if (ui.reader.hidden) ui.q.focus();
}

start();
