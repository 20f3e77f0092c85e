// The reader: GET /render's node tree (README "HTTP API") to DOM.
//
// Safe by construction: tags come from a fixed table (an unknown one is shown as its
// text), text goes in text nodes, and the only attributes set are checked here again:
// an http/https/mailto href, a list start, a table cell's alignment as a class, and the
// source line. Never an id or a name from the document (DOM clobbering), never an <img>.

const TAGS = new Set([
  "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "ul", "ol", "li",
  "table", "thead", "tbody", "tr", "th", "td", "em", "strong", "del", "br", "hr", "sup",
]);
const SCHEMES = new Set(["http:", "https:", "mailto:"]);
const ALIGN = new Set(["left", "center", "right"]);

/** An href the reader may follow: absolute, with an allowed scheme. */
export function safeHref(href) {
  try {
    const u = new URL(String(href));
    return SCHEMES.has(u.protocol) ? u.href : null;
  } catch (_) {
    return null;
  }
}

/** The document's blocks as a fragment; `docHref(path, anchor)` links to another doc. */
export function renderDoc(doc, docHref) {
  const frag = document.createDocumentFragment();
  for (const b of doc.blocks || []) frag.append(build(b, docHref));
  return frag;
}

function build(node, docHref) {
  if (typeof node === "string") return document.createTextNode(node);
  if (!node || typeof node !== "object") return document.createTextNode("");
  const kids = (e) => {
    for (const c of Array.isArray(node.c) ? node.c : []) e.append(build(c, docHref));
    return e;
  };
  let e;
  switch (node.t) {
    case "a":
      e = link(node, docHref);
      break;
    case "task":
      e = document.createElement("input");
      e.type = "checkbox";
      e.disabled = true;
      e.checked = node.checked === true;
      e.className = "task";
      return e;
    case "image":
      return image(node);
    case "raw":
      // Raw HTML from the doc, shown as text: a block when it stands alone (has a line).
      e = document.createElement("code");
      e.className = Number.isInteger(node.line) ? "raw block" : "raw";
      break;
    default:
      if (!TAGS.has(node.t)) return kids(document.createDocumentFragment());
      e = document.createElement(node.t);
  }
  if (Number.isInteger(node.line)) e.dataset.line = node.line;
  if (node.t === "ol" && Number.isInteger(node.start)) e.start = node.start;
  if ((node.t === "th" || node.t === "td") && ALIGN.has(node.align)) e.className = `align-${node.align}`;
  if (node.t === "pre" && typeof node.lang === "string") e.dataset.lang = node.lang;
  if (/^h[1-6]$/.test(node.t) && typeof node.id === "string") e.dataset.section = node.id;
  return kids(e);
}

function link(node, docHref) {
  const a = document.createElement("a");
  if (typeof node.doc === "string") {
    a.href = docHref(node.doc, typeof node.anchor === "string" ? node.anchor : "");
    a.className = "doc-link";
    return a;
  }
  const href = safeHref(node.href);
  if (!href) return document.createElement("span"); // only its text
  a.href = href;
  a.rel = "noopener noreferrer";
  a.target = "_blank";
  a.referrerPolicy = "no-referrer";
  return a;
}

/** No <img>: the alt text, and a link to an http(s) source. */
function image(node) {
  const s = document.createElement("span");
  s.className = "image";
  s.append(`🖼 ${typeof node.alt === "string" && node.alt ? node.alt : "image"}`);
  const href = safeHref(node.src);
  if (href && !href.startsWith("mailto:")) {
    const a = document.createElement("a");
    a.href = href;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    a.textContent = " (open)";
    s.append(a);
  }
  return s;
}

/** The block to scroll to for `line`: the last [data-line] at or before it. */
export function lineTarget(root, line) {
  let best = null;
  for (const e of root.querySelectorAll("[data-line]")) {
    const l = Number(e.dataset.line);
    if (l <= line && (!best || l >= Number(best.dataset.line))) best = e;
  }
  return best || root.firstElementChild;
}

/** Wraps each occurrence of `words` (lower case) in <mark>, at most 500 of them. */
export function markWords(root, words) {
  const ws = words.filter((w) => w.trim());
  if (!ws.length) return;
  const esc = ws.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(esc.join("|"), "gi");
  const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let t = walk.nextNode(); t && found.length < 500; t = walk.nextNode()) {
    if (t.parentElement.closest("mark")) continue;
    re.lastIndex = 0;
    if (re.test(t.data)) found.push(t);
  }
  let count = 0;
  for (let t of found) {
    re.lastIndex = 0;
    let m;
    while (count < 500 && (m = re.exec(t.data))) {
      const hit = t.splitText(m.index);
      t = hit.splitText(m[0].length);
      const mark = document.createElement("mark");
      hit.replaceWith(mark);
      mark.append(hit);
      count++;
      re.lastIndex = 0;
    }
  }
}
