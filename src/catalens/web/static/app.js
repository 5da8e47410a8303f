// catalens web page: hash routes #/search, #/browse, #/product/<id>, #/quality, #/ingest.
import * as api from "./api.js";

const view = document.getElementById("view");
const state = { features: [], openReads: true, facets: null, limits: {} };

// ---------------------------------------------------------------- helpers
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "html") el.innerHTML = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toast(message, isError = false) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.className = "show" + (isError ? " error" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.className = isError ? "error" : ""), isError ? 6000 : 3000);
}

function img(url, alt = "", cls) {
  const el = h("img", { alt, loading: "lazy", decoding: "async", class: cls });
  if (state.openReads || !api.getKey()) el.src = url;
  else fetch(url, { headers: { Authorization: `Bearer ${api.getKey()}` } })
    .then((r) => r.blob()).then((b) => (el.src = URL.createObjectURL(b)));
  return el;
}

const has = (f) => state.features.includes(f);
const pct = (x) => `${Math.round(x * 100)}%`;
const CHIP_ATTRS = ["articleType", "baseColour", "gender", "category", "colour", "color"];

function chipsFor(attrs) {
  const out = [];
  for (const k of CHIP_ATTRS) if (attrs && attrs[k]) out.push(h("span", { class: "chip" }, attrs[k]));
  return h("div", { class: "chips" }, out.slice(0, 3));
}

function card({ id, title, attrs, sha, score }) {
  const thumbBox = h("div", { class: "thumb" }, sha ? img(api.thumb(sha), title || id) : h("span", { class: "muted small" }, "no image"));
  if (score !== undefined) thumbBox.append(h("span", { class: "score", title: "cosine similarity" }, score.toFixed(3)));
  return h("a", { class: "card", href: id ? `#/product/${encodeURIComponent(id)}` : undefined, "data-testid": "result-card", "data-sha": sha },
    thumbBox,
    h("div", { class: "body" },
      h("div", { class: "title" }, title || id || "untitled"),
      h("div", { class: "id" }, id ? `#${id}` : "image only"),
      chipsFor(attrs)));
}

const resultCard = (r) => card({ id: r.product_id, title: r.title, attrs: r.attrs, sha: r.image_sha256, score: r.score });

// quality badges and predicted tags for the cards of a grid: one request for all of them
async function decorate(root) {
  const cards = [...root.querySelectorAll("[data-sha]:not([data-decorated])")];
  if (!cards.length) return;
  cards.forEach((c) => c.setAttribute("data-decorated", ""));
  try {
    const res = await api.send("POST", "/images/badges", { shas: [...new Set(cards.map((c) => c.dataset.sha))] });
    for (const c of cards) {
      const b = res.images[c.dataset.sha];
      if (!b) continue;
      if (b.quality) {
        const q = b.quality;
        const label = q.verdict === "pass" ? "QC ok" : q.issues.slice(0, 2).join(", ");
        c.querySelector(".thumb").append(h("span", { class: "qbadge", "data-testid": "quality-badge", title: `${q.profile}: ${q.verdict}${q.issues.length ? " · " + q.issues.join(", ") : ""}` }, verdictBadge(q.verdict, label)));
      }
      const tags = b.tags.filter((t) => !t.needs_review).slice(0, 3);
      if (tags.length) c.querySelector(".chips").replaceChildren(...tags.map((t) => h("span", { class: "chip tag", "data-testid": "tag", title: `${t.field}: ${pct(t.prob)} (${res.classifier})` }, t.label, h("small", {}, pct(t.prob)))));
    }
  } catch { /* badges are optional */ }
}

function empty(title, text) {
  return h("div", { class: "empty" }, h("b", {}, title), text);
}

function skeletons(n = 8) {
  return h("div", { class: "cards" }, Array.from({ length: n }, () => h("div", { class: "skeleton" })));
}

function showError(where, err) {
  where.replaceChildren(empty("Something went wrong", err.message));
}

async function loadFacets() {
  if (!state.facets) state.facets = await api.get("/facets").catch(() => ({}));
  return state.facets;
}

// deep links: a view's state lives in its hash query (#/search?text=…, #/browse?where=…&q=…&sort=…)
function hashParams() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

// write a view's state back to the address bar (a new history entry when asked, so Back returns)
function setHashParams(name, params, push = false) {
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();
  const next = `#/${name}${qs ? "?" + qs : ""}`;
  if (location.hash === next) return;
  if (push) history.pushState(null, "", next); else history.replaceState(null, "", next);
}

// the server's --where notes (a value no product holds, with "did you mean")
function warningsNote(page) {
  const w = (page && page.warnings) || [];
  return w.length ? h("div", { class: "note warn-t", "data-testid": "where-warning" }, w.join(" · ")) : null;
}

const CLAUSE = /^`([^`]+)` = '((?:[^']|'')*)'$/;

// a row of <select> filters built from the catalog's facets plus a free filter expression;
// returns {selects, expr, where(), set(where)}
async function facetFilters(onChange, keys = ["masterCategory", "articleType", "gender", "baseColour", "season", "usage"]) {
  const facets = await loadFacets();
  const names = keys.filter((k) => facets[k]).concat(Object.keys(facets).filter((k) => !keys.includes(k))).slice(0, 6);
  const selects = names.map((name) => {
    const sel = h("select", { "aria-label": name, "data-facet": name, onchange: onChange },
      h("option", { value: "" }, `All ${name}`),
      facets[name].map((f) => h("option", { value: f.value }, `${f.value} (${f.count})`)));
    return sel;
  });
  const expr = h("input", { type: "search", placeholder: "year >= 2012 and gender = 'Men'", "aria-label": "filter expression", "data-testid": "where-expr" });
  expr.addEventListener("change", onChange);
  const where = () => selects.filter((s) => s.value)
    .map((s) => `\`${s.dataset.facet}\` = '${s.value.replaceAll("'", "''")}'`)
    .concat(expr.value.trim() ? [selects.some((s) => s.value) ? `(${expr.value.trim()})` : expr.value.trim()] : []).join(" and ");
  // a linked filter: clauses the menus can show go to them, anything else to the expression
  const set = (text) => {
    selects.forEach((s) => (s.value = ""));
    expr.value = "";
    if (!text) return;
    const clauses = text.split(" and ").map((c) => c.match(CLAUSE));
    const fits = clauses.every((m) => m && selects.some((s) => s.dataset.facet === m[1]
      && [...s.options].some((o) => o.value === m[2].replaceAll("''", "'"))));
    if (!fits) { expr.value = text; return; }
    for (const m of clauses) selects.find((s) => s.dataset.facet === m[1]).value = m[2].replaceAll("''", "'");
  };
  return { selects, expr, where, set };
}

// ---------------------------------------------------------------- search
async function searchView() {
  const results = h("div", { id: "results" });
  const queryLine = h("div", { class: "query-line" });
  let current = null; // {kind, value, offset}
  const preview = h("div", { class: "icon", html: '<svg width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><rect x="3" y="3" width="18" height="18" rx="3"/><circle cx="8.5" cy="8.5" r="1.5"/><path d="M21 15l-5-5L5 21"/></svg>' });
  const fileInput = h("input", { type: "file", accept: "image/*", class: "hidden", "data-testid": "search-file" });
  const drop = h("label", { class: "drop", tabindex: "0", "data-testid": "dropzone" }, preview,
    h("div", {}, h("b", {}, "Drop, paste or choose a product photo"),
      h("span", { class: "muted small" }, "Finds look-alikes in the catalog. Nothing is stored.")), fileInput);
  const textInput = h("input", { type: "search", placeholder: "Describe it: red running shoes…", "aria-label": "text query" });
  const idInput = h("input", { type: "text", placeholder: "or a product id", "aria-label": "product id", size: "12" });
  const filters = await facetFilters(() => current && run(current.kind, current.value, 0));

  async function run(kind, value, offset = 0) {
    current = { kind, value, offset };
    const where = filters.where();
    if (offset === 0) {
      results.replaceChildren(skeletons());
      // the address bar links this search (an uploaded photo cannot be linked: only its filter)
      const key = { text: "text", product_id: "id" }[kind];
      const linked = key ? { [key]: value, where } : { where };
      const was = hashParams();
      setHashParams("search", linked, !key || was.get(key) !== value);
    }
    try {
      let page;
      const limit = 24;
      if (kind === "file") {
        const form = new FormData();
        form.append("file", value);
        form.append("limit", limit);
        form.append("offset", offset);
        if (where) form.append("where", where);
        page = await api.postForm("/search", form);
        queryLine.replaceChildren("Results for your photo", where ? ` · ${where}` : "", warningsNote(page) || "");
      } else {
        page = await api.get("/search", { [kind]: value, where, limit, offset });
        queryLine.replaceChildren(kind === "text" ? `Results for “${value}”` : `More like #${value}`, where ? ` · ${where}` : "", warningsNote(page) || "");
      }
      const cards = page.results.map(resultCard);
      let grid = results.querySelector(".cards");
      if (offset === 0 || !grid) {
        grid = h("div", { class: "cards" });
        results.replaceChildren(grid);
      }
      grid.append(...cards);
      decorate(grid);
      results.querySelector(".more")?.remove();
      if (!page.results.length && offset === 0) results.replaceChildren(empty("No matches", "Try removing a filter."));
      if (page.has_more) results.append(h("div", { class: "more" },
        h("button", { onclick: () => run(kind, value, offset + limit) }, "Show more")));
    } catch (err) {
      if (offset === 0) showError(results, err); else toast(err.message, true);
    }
  }

  // shop the look: the products found in the photo, as boxes to click; each box shows its own results
  const look = h("div", { class: "look-panel hidden", "data-testid": "look" });
  function showItem(page, item, boxes) {
    boxes.forEach((b, i) => b.classList.toggle("active", i === item.item));
    queryLine.replaceChildren(`Results for product ${item.item + 1} in your photo (${item.category})`);
    const grid = h("div", { class: "cards" }, (item.results || []).map(resultCard));
    results.replaceChildren(item.results && item.results.length ? grid : empty("No matches", "Try removing a filter."));
    decorate(grid);
  }
  async function detectPhoto(f, url) {
    look.classList.add("hidden");
    if (!has("detect")) return;
    const form = new FormData();
    form.append("file", f);
    form.append("search", "true");
    form.append("limit", 24);
    const where = filters.where();
    if (where) form.append("where", where);
    let page;
    try { page = await api.postForm("/detect", form); } catch (err) { return toast(`finding products: ${err.message}`, true); }
    if (!page.items.length) return;
    const frame = h("div", { class: "look" }, Object.assign(h("img", { alt: "your photo", "data-testid": "look-photo" }), { src: url }));
    const boxes = page.items.map((it) => {
      const [x0, y0, x1, y1] = it.box;
      const b = h("button", {
        class: "box", type: "button", "data-testid": "look-box", title: `${it.category} · ${pct(it.score)}`,
        style: `left:${(100 * x0) / page.width}%;top:${(100 * y0) / page.height}%;width:${(100 * (x1 - x0)) / page.width}%;height:${(100 * (y1 - y0)) / page.height}%`,
        onclick: () => showItem(page, it, boxes),
      }, h("span", {}, `${it.item + 1} ${it.category}`));
      frame.append(b);
      return b;
    });
    look.replaceChildren(
      h("div", { class: "look-head" }, h("b", {}, `${page.count} product${page.count > 1 ? "s" : ""} in your photo`),
        h("span", { class: "muted small" }, " · click one to search for it, or "),
        h("button", { class: "ghost small", type: "button", onclick: () => { boxes.forEach((b) => b.classList.remove("active")); run("file", f); } }, "the whole photo")),
      frame);
    look.classList.remove("hidden");
  }

  function useFile(f) {
    if (!f) return;
    if (!f.type.startsWith("image/") && f.type) return toast(`${f.name}: not an image`, true);
    const url = URL.createObjectURL(f);
    preview.replaceWith(Object.assign(h("img", { class: "preview", alt: "query" }), { src: url }));
    run("file", f);
    detectPhoto(f, url);
  }
  fileInput.addEventListener("change", () => useFile(fileInput.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); useFile(e.dataTransfer.files[0]); });
  document.onpaste = (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) useFile(item.getAsFile());
  };

  const textForm = h("form", {
    onsubmit: (e) => {
      e.preventDefault();
      if (idInput.value.trim()) run("product_id", idInput.value.trim());
      else if (textInput.value.trim()) run("text", textInput.value.trim());
    },
  }, textInput, idInput, h("button", { class: "primary", type: "submit" }, "Search"));

  view.replaceChildren(
    h("div", { class: "search-hero" }, drop,
      h("div", { class: "text-search panel" }, h("h2", {}, "Search the catalog"), textForm)),
    h("div", { class: "filters" }, filters.selects, filters.expr),
    look, queryLine, results);
  results.replaceChildren(empty("Start with a photo or a few words", "Results show similarity scores and tags; click one for its product page."));
  // deep link: #/search?text=…, #/search?id=<product> (image search by that product's photos), &where=…
  const q = hashParams();
  filters.set(q.get("where"));
  const pid = q.get("id") || q.get("product");
  if (pid) { idInput.value = pid; run("product_id", pid); }
  else if (q.get("text")) { textInput.value = q.get("text"); run("text", q.get("text")); }
}

// ---------------------------------------------------------------- browse
async function browseView() {
  const grid = h("div", {});
  const pager = h("div", { class: "pager" });
  const info = h("span", { class: "muted small" });
  const qInput = h("input", { type: "search", placeholder: "Title or id…", "aria-label": "filter by title" });
  const sortSel = h("select", { "aria-label": "sort" },
    h("option", { value: "id" }, "Id"), h("option", { value: "title" }, "Title A–Z"), h("option", { value: "-title" }, "Title Z–A"), h("option", { value: "-created" }, "Newest"));
  const limit = 30;
  const filters = await facetFilters(() => { offset = 0; load(); });
  // deep link: #/browse?q=…&where=…&sort=…&page=N
  const linked = hashParams();
  qInput.value = linked.get("q") || "";
  if ([...sortSel.options].some((o) => o.value === linked.get("sort"))) sortSel.value = linked.get("sort");
  filters.set(linked.get("where"));
  let offset = Math.max(0, (parseInt(linked.get("page") || "1", 10) || 1) - 1) * limit;

  async function load() {
    grid.replaceChildren(skeletons(10));
    const where = filters.where();
    setHashParams("browse", { q: qInput.value.trim(), where, sort: sortSel.value === "id" ? "" : sortSel.value, page: offset ? Math.floor(offset / limit) + 1 : "" });
    try {
      const page = await api.get("/products", { q: qInput.value.trim(), where, offset, limit, sort: sortSel.value });
      info.replaceChildren(`${page.total.toLocaleString()} products`, warningsNote(page) || "");
      grid.replaceChildren(page.items.length
        ? h("div", { class: "cards" }, page.items.map((p) => card({ id: p.id, title: p.title, attrs: p.attrs, sha: p.cover })))
        : empty("No products", "Nothing matches these filters."));
      decorate(grid);
      const pages = Math.max(1, Math.ceil(page.total / limit));
      const cur = Math.floor(offset / limit) + 1;
      pager.replaceChildren(
        h("button", { disabled: cur <= 1, onclick: () => { offset -= limit; load(); scrollTo(0, 0); } }, "← Previous"),
        h("span", { class: "muted small" }, `Page ${cur} of ${pages}`),
        h("button", { disabled: cur >= pages, onclick: () => { offset += limit; load(); scrollTo(0, 0); } }, "Next →"));
    } catch (err) { showError(grid, err); }
  }
  let timer;
  qInput.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { offset = 0; load(); }, 250); });
  sortSel.addEventListener("change", () => { offset = 0; load(); });
  view.replaceChildren(h("div", { class: "layout" },
    h("aside", { class: "facets panel" }, h("h3", {}, "Filters"),
      h("label", { class: "field" }, "Search", qInput),
      h("label", { class: "field" }, "Sort", sortSel),
      filters.selects.map((s) => h("label", { class: "field" }, s.dataset.facet, s)),
      h("label", { class: "field" }, "Filter expression", filters.expr)),
    h("section", {}, h("div", { class: "row" }, h("h1", {}, "Catalog"), h("span", { class: "spacer" }), info), grid, pager)));
  load();
}

// ---------------------------------------------------------------- product
const VERDICT_ICON = { pass: "✓", warn: "!", fail: "✕", error: "⚠" };

function verdictBadge(v, text) {
  return h("span", { class: `badge ${v}`, title: text || v }, `${VERDICT_ICON[v] || ""} ${text || v}`);
}

function bars(fields) {
  return Object.entries(fields).map(([field, fp]) => h("div", { class: "tagfield" },
    h("div", { class: "row" }, h("span", { class: "muted small" }, field), h("span", { class: "spacer" }),
      fp.needs_review ? h("span", { class: "badge warn", title: "confidence below the review threshold" }, "review") : null),
    (fp.top_k || [{ label: fp.label, prob: fp.prob }]).map((t, i) => h("div", { class: "bar" + (i ? " alt" : "") },
      h("span", { class: "lbl", title: t.label }, t.label),
      h("span", { class: "track" }, h("span", { class: "fill", style: `width:${(t.prob * 100).toFixed(1)}%` })),
      h("span", { class: "val" }, pct(t.prob))))));
}

function tagsPanel(sha) {
  const box = h("div", { class: "panel section", "data-testid": "tags" }, h("h3", {}, "Predicted tags"),
    h("div", { class: "muted small" }, "Classifying…"));
  let chosen = null;
  const load = (tries) => api.get(`/images/${sha}/tags`).then((res) => {
    const tabs = res.classifiers.filter((c) => Object.keys(c.fields).length);
    const loading = res.classifiers.some((c) => c.loading);
    if (loading && tries < 40) setTimeout(() => box.isConnected && load(tries + 1), 3000);
    if (!tabs.length) return box.replaceChildren(h("h3", {}, "Predicted tags"), h("div", { class: "muted small" }, loading ? "Loading the classifier…" : (res.classifiers[0]?.note || "No classifier applies.")));
    const body = h("div", {});
    const seg = h("div", { class: "seg" });
    const pick = (c) => {
      chosen = c.classifier;
      [...seg.children].forEach((b) => b.classList.toggle("on", b.dataset.name === c.classifier));
      body.replaceChildren(...bars(c.fields));
    };
    tabs.forEach((c) => seg.append(h("button", { "data-name": c.classifier, onclick: () => pick(c) }, c.classifier === "builtin" ? "Built-in taxonomy" : c.classifier)));
    pick(tabs.find((c) => c.classifier === chosen) || tabs[tabs.length - 1]);
    box.replaceChildren(h("div", { class: "row" }, h("h3", {}, "Predicted tags"), h("span", { class: "spacer" }), tabs.length > 1 ? seg : null), body,
      ...(loading ? [h("div", { class: "muted small" }, "The built-in taxonomy is loading…")] : []));
  }).catch((err) => box.replaceChildren(h("h3", {}, "Predicted tags"), h("div", { class: "muted small" }, err.message)));
  load(0);
  return box;
}

function coloursPanel(sha) {
  const box = h("div", { class: "panel section", "data-testid": "colours" }, h("h3", {}, "Colours"), h("div", { class: "muted small" }, "Measuring…"));
  api.get(`/images/${sha}/colours`).then((res) => {
    const strip = h("div", { class: "colourbar" }, res.colours.map((c) => h("i", { style: `flex:${c.percent};background:rgb(${c.rgb.join(",")})`, title: `${c.name} ${c.percent}%` })));
    box.replaceChildren(h("div", { class: "row" }, h("h3", {}, "Colours"), h("span", { class: "spacer" }),
      h("span", { class: "chip accent" }, `Primary: ${res.primary}`)), strip,
      h("div", { class: "swatches" }, res.colours.map((c) => h("div", { class: "swatch" },
        h("i", { style: `background:rgb(${c.rgb.join(",")})` }), h("b", {}, c.name), `${Math.round(c.percent)}%`))),
      h("div", { class: "muted small" }, `Measured on the product (${Math.round(res.foreground_percent)}% of the photo, ${res.foreground_method} foreground).`));
  }).catch((err) => box.replaceChildren(h("h3", {}, "Colours"), h("div", { class: "muted small" }, err.message)));
  return box;
}

function qcList(entry) {
  const issues = entry.results.filter((r) => r.verdict !== "pass");
  const passes = entry.results.filter((r) => r.verdict === "pass");
  return h("div", { class: "qc" },
    h("div", { class: "row" }, verdictBadge(entry.verdict, entry.verdict === "pass" ? "passes" : `${issues.length} issue${issues.length > 1 ? "s" : ""}`),
      h("span", { class: "muted small" }, `profile ${entry.profile}${entry.stored ? "" : " · checked now"}`)),
    h("ul", { class: "verdicts" }, issues.map((r) => h("li", {}, verdictBadge(r.verdict, r.check), h("span", {}, r.reason)))),
    passes.length ? h("details", {}, h("summary", { class: "muted small" }, `${passes.length} checks passed`),
      h("ul", { class: "verdicts" }, passes.map((r) => h("li", {}, verdictBadge("pass", r.check), h("span", { class: "muted" }, r.reason))))) : null);
}

function qualityPanel(sha) {
  const box = h("div", { class: "panel section", "data-testid": "quality" }, h("h3", {}, "Quality"), h("div", { class: "muted small" }, "Loading…"));
  const render = (res) => {
    if (!res.profiles.length) {
      box.replaceChildren(h("h3", {}, "Quality"), h("div", { class: "muted small" }, "Checking against the general profile…"));
      return api.get(`/images/${sha}/quality`, { profile: "general" }).then(render);
    }
    box.replaceChildren(h("h3", {}, "Quality"), ...res.profiles.map(qcList));
  };
  api.get(`/images/${sha}/quality`).then(render)
    .catch((err) => box.replaceChildren(h("h3", {}, "Quality"), h("div", { class: "muted small" }, err.message)));
  return box;
}

async function productView(id) {
  view.replaceChildren(skeletons(2));
  let p;
  try { p = await api.get(`/products/${encodeURIComponent(id)}`); } catch (err) { return showError(view, err); }
  const main = h("div", { class: "main", "data-testid": "main-image" });
  const strip = h("div", { class: "strip" });
  const insights = h("div", {});
  const heatToggle = h("input", { type: "checkbox", "data-testid": "heatmap-toggle" });
  const heatNote = h("span", { class: "muted small" });
  let selected = p.images[0]?.sha256;
  function paintHeat() {
    main.querySelector("img.heat")?.remove();
    heatNote.textContent = "";
    if (!heatToggle.checked || !selected) return;
    heatNote.textContent = "computing…";
    const want = selected;
    const heat = img(`/api/v1/images/${selected}/explain.png`, "heatmap", "heat");
    heat.addEventListener("load", () => {
      if (!heatToggle.checked || selected !== want) return;
      main.querySelector("img.heat")?.remove();
      main.append(heat);
      heatNote.textContent = "regions behind the predicted label";
    });
    heat.addEventListener("error", () => (heatNote.textContent = "no heatmap for this image"));
  }
  function show(sha) {
    selected = sha;
    main.replaceChildren(sha ? img(api.thumb(sha, 512), p.title || p.id) : empty("No image", ""));
    [...strip.children].forEach((b) => b.classList.toggle("sel", b.dataset.sha === sha));
    paintHeat();
    insights.replaceChildren(...(sha ? [
      has("classify") ? tagsPanel(sha) : null,
      has("classify") ? coloursPanel(sha) : null,
      has("quality") ? qualityPanel(sha) : null].filter(Boolean) : []));
  }
  heatToggle.addEventListener("change", paintHeat);
  if (p.images.length > 1) p.images.forEach((im) => strip.append(h("button", { "data-sha": im.sha256, onclick: () => show(im.sha256), title: `${im.width}×${im.height} ${im.format}` }, img(api.thumb(im.sha256, 128)))));

  const attrs = h("dl", { class: "attrs" }, Object.entries(p.attrs).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
  const imgFacts = p.images[0] ? h("p", { class: "muted small" }, `${p.images.length} image${p.images.length > 1 ? "s" : ""} · ${p.images[0].width}×${p.images[0].height} ${p.images[0].format}`) : null;
  const gallery = h("div", { class: "gallery" }, main, strip,
    has("explain") && p.images.length ? h("label", { class: "switch" }, heatToggle, "Heatmap", heatNote) : null);
  const info = h("div", {},
    h("div", { class: "muted small" }, h("a", { href: "#/browse" }, "Catalog"), ` / #${p.id}`),
    h("h1", {}, p.title || p.id), imgFacts,
    h("div", { class: "panel section" }, h("h3", {}, "Attributes"), attrs), insights);

  const similar = h("div", { class: "section" });
  const recs = h("div", { class: "section" });
  view.replaceChildren(h("div", { class: "product" }, gallery, info), similar, recs);
  show(selected);

  if (has("search")) {
    similar.append(h("div", { class: "row" }, h("h2", {}, "Similar products"), h("span", { class: "spacer" }),
      h("a", { href: `#/search?id=${encodeURIComponent(p.id)}` }, "See all →")));
    const row = h("div", { class: "scroller", "data-testid": "similar" });
    similar.append(row);
    api.get("/search", { product_id: p.id, limit: 12 })
      .then((page) => { row.replaceChildren(...page.results.map(resultCard)); decorate(row); })
      .catch((err) => row.replaceChildren(h("div", { class: "note" }, `Not available right now: ${err.message}`)));
  }
  if (has("recommend")) {
    recs.append(h("h2", {}, "Recommended with this"));
    const row = h("div", { class: "scroller", "data-testid": "recommendations" });
    recs.append(row);
    api.send("POST", "/recommend", { products: [p.id], k: 12 })
      .then((res) => row.replaceChildren(...res.items.map((r) => {
        const c = card({ id: r.product_id, title: r.title, attrs: {} });
        c.querySelector(".body").append(h("div", { class: "muted small reason" }, r.reason));
        loadCover(c, r.product_id);
        return c;
      })))
      .catch((err) => row.replaceChildren(h("div", { class: "note" }, `Not available right now: ${err.message}`)));
  }
}

// recommendations carry no image id: fetch the product's cover lazily
async function loadCover(cardEl, id) {
  try {
    const p = await api.get(`/products/${encodeURIComponent(id)}`);
    if (p.images[0]) cardEl.querySelector(".thumb").replaceChildren(img(api.thumb(p.images[0].sha256), p.title || id));
  } catch { /* keep the placeholder */ }
}

// ---------------------------------------------------------------- quality
async function qualityView() {
  if (!has("quality")) {
    return view.replaceChildren(h("h1", {}, "Quality"), empty("Quality checks are not installed on this server", ""));
  }
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const body = h("div", {}, skeletons(6));
  const sel = h("select", { "aria-label": "profile", "data-testid": "profile-filter" });
  const issueSel = h("select", { "aria-label": "issue" }, h("option", { value: "" }, "All issues"));
  view.replaceChildren(h("div", { class: "row" }, h("h1", {}, "Quality"), h("span", { class: "spacer" }),
    h("label", { class: "field inline" }, "Profile", sel), h("label", { class: "field inline" }, "Issue", issueSel)), body);
  let data;
  let offset = 0;
  const PAGE = 24;
  async function load(profile, keepIssue = false) {
    body.replaceChildren(skeletons(6));
    const want = keepIssue ? issueSel.value : "";
    try { data = await api.get("/qc/summary", { profile, worst: PAGE, offset, check: want }); } catch (err) { return showError(body, err); }
    sel.replaceChildren(...(data.profiles.length ? data.profiles : [{ name: "", images: 0 }]).map((pr) =>
      h("option", { value: pr.name, selected: pr.name === data.profile }, pr.name ? `${pr.name} (${pr.images})` : "no stored results")));
    issueSel.replaceChildren(h("option", { value: "" }, "All issues"), ...data.by_issue.map((i) => h("option", { value: i.check, selected: i.check === want }, i.check)));
    paint();
  }
  const reload = () => load(data && data.profile, true);
  const setIssue = (check) => { issueSel.value = check; offset = 0; reload(); };
  async function exportCsv() {
    const qs = new URLSearchParams({ format: "csv", ...(data.profile ? { profile: data.profile } : {}) });
    try {
      const res = await fetch(`/api/v1/export/qc?${qs}`, { headers: api.getKey() ? { Authorization: `Bearer ${api.getKey()}` } : {} });
      if (!res.ok) throw new Error((await res.json()).error.message);
      const a = h("a", { href: URL.createObjectURL(await res.blob()), download: `catalens-qc-${data.profile || "all"}.csv` });
      document.body.append(a); a.click(); a.remove();
      toast(`Exported ${res.headers.get("X-Row-Count")} rows`);
    } catch (err) { toast(err.message, true); }
  }
  async function dismiss(e, sha, check, undo) {
    e.preventDefault(); e.stopPropagation();
    try {
      if (undo) await api.send("DELETE", `/qc/exceptions/${sha}/${encodeURIComponent(check)}`);
      else await api.send("POST", "/qc/exceptions", { sha256: sha, check, note: "dismissed on the Quality page" });
      toast(undo ? `${check} counts again` : `${check} dismissed as a false positive`);
      reload();
    } catch (err) { toast(err.message, true); }
  }
  function paint() {
    if (!data.images) {
      return body.replaceChildren(empty("No stored quality results yet",
        h("span", {}, "Run ", h("code", {}, "catalens qc --all --profile general"), " and reload this page.")));
    }
    const v = data.verdicts;
    const kpi = (n, l, cls) => h("div", { class: `kpi ${cls || ""}` }, h("div", { class: "n" }, n.toLocaleString()), h("div", { class: "l" }, l));
    const share = (n) => `${((100 * n) / data.images).toFixed(1)}%`;
    const maxIssue = Math.max(1, ...data.by_issue.map((i) => i.fail + i.warn));
    const issues = h("div", { class: "panel", "data-testid": "issue-counts" }, h("h3", {}, "Images by issue"),
      data.by_issue.length ? data.by_issue.map((i) => h("button", { class: "issuebar" + (issueSel.value === i.check ? " on" : ""), onclick: () => setIssue(issueSel.value === i.check ? "" : i.check) },
        h("span", { class: "lbl" }, i.check),
        h("span", { class: "track" }, h("span", { class: "fill fail", style: `width:${(100 * i.fail) / maxIssue}%` }), h("span", { class: "fill warn", style: `width:${(100 * i.warn) / maxIssue}%` })),
        h("span", { class: "val" }, i.fail ? h("b", { class: "bad" }, i.fail) : "", i.fail && i.warn ? " · " : "", i.warn ? h("span", { class: "warn-t" }, i.warn) : ""))) : h("div", { class: "muted" }, "No issues found."));
    const want = issueSel.value;
    const worst = data.worst;
    const grid = h("div", { class: "cards", "data-testid": "worst" }, worst.map((w) => {
      const pid = w.products[0];
      const thumb = h("div", { class: "thumb" }, w.sha256 ? img(api.thumb(w.sha256), w.source) : null,
        h("span", { class: "qbadge" }, verdictBadge(w.verdict)));
      return h("a", { class: "card", href: pid ? `#/product/${encodeURIComponent(pid)}` : undefined, "data-testid": "worst-card" }, thumb,
        h("div", { class: "body" }, h("div", { class: "id" }, pid ? `#${pid}` : w.source.split("/").pop()),
          h("ul", { class: "reasons" }, w.reasons.slice(0, 5).map((r) => h("li", { class: r.verdict === "dismissed" ? "dismissed" : "", "data-check": r.check },
            h("span", { class: `dot ${r.verdict}` }), h("b", {}, r.check), " ",
            r.verdict === "dismissed" ? h("span", { class: "muted" }, "dismissed ") : null,
            h("span", { class: "muted" }, r.reason), " ",
            r.verdict === "error" ? null : h("button", { class: "ghost tiny", "data-testid": r.verdict === "dismissed" ? "undismiss" : "dismiss",
              title: r.verdict === "dismissed" ? "count this check again" : "a false positive: accept this image for this check",
              onclick: (e) => dismiss(e, w.sha256, r.check, r.verdict === "dismissed") }, r.verdict === "dismissed" ? "Undo" : "Dismiss"))))));
    }));
    const first = data.offset + 1;
    const last = data.offset + worst.length;
    const pager = h("div", { class: "pager", "data-testid": "quality-pager" },
      h("button", { disabled: data.offset <= 0, onclick: () => { offset = Math.max(0, offset - PAGE); reload(); } }, "← Previous"),
      h("span", { class: "muted small" }, worst.length ? `${first}–${last} of ${data.worst_total}` : `0 of ${data.worst_total}`),
      h("button", { disabled: last >= data.worst_total, onclick: () => { offset += PAGE; reload(); } }, "Next →"));
    body.replaceChildren(
      h("div", { class: "kpis" }, kpi(data.images, `images checked · ${data.profile}`), kpi(v.pass, `pass · ${share(v.pass)}`, "ok"),
        kpi(v.warn, `warn · ${share(v.warn)}`, "warn"), kpi(v.fail, `fail · ${share(v.fail)}`, "bad")),
      h("div", { class: "qgrid" }, issues,
        h("div", {}, h("div", { class: "row" }, h("h2", {}, want ? `Worst images: ${want}` : "Worst images"), h("span", { class: "spacer" }),
          h("span", { class: "muted small" }, `most failed checks first${data.dismissed ? ` · ${data.dismissed} dismissed` : ""}`),
          h("button", { class: "ghost", "data-testid": "export-csv", onclick: exportCsv }, "Export CSV")),
          worst.length ? grid : empty("Nothing to show", "No image has this issue."), pager)));
  }
  sel.addEventListener("change", () => { offset = 0; load(sel.value); });
  issueSel.addEventListener("change", () => { offset = 0; reload(); });
  await load(q.get("profile") || undefined);
}

// ---------------------------------------------------------------- duplicates
async function duplicatesView() {
  if (!has("dedup")) return view.replaceChildren(h("h1", {}, "Duplicates"), empty("Duplicate detection is not installed on this server", ""));
  const linked = hashParams();
  let kind = linked.get("view") === "variants" ? "variants" : "duplicates";
  let offset = 0;
  const limit = 10;
  const body = h("div", {}, skeletons(4));
  const info = h("span", { class: "muted small", "data-testid": "dup-total" });
  const seg = h("div", { class: "seg" });
  const pager = h("div", { class: "pager" });
  const tabs = { duplicates: "Duplicates (copies)", variants: "Variant families" };
  for (const [k, label] of Object.entries(tabs)) seg.append(h("button", { "data-name": k, onclick: () => { kind = k; offset = 0; load(); } }, label));
  let againTimer; // one pending "ask again" at a time
  async function load(again = false) { // again: the page asking for a report being computed (no skeletons)
    [...seg.children].forEach((b) => b.classList.toggle("on", b.dataset.name === kind));
    setHashParams("duplicates", { view: kind === "duplicates" ? "" : kind });
    if (!again) body.replaceChildren(skeletons(4));
    let page;
    try { page = await api.get("/dedup/groups", { view: kind, offset, limit }); } catch (err) { return showError(body, err); }
    if (page.status === "computing") { // the first report of a large catalog takes minutes: ask again
      info.textContent = "";
      body.replaceChildren(empty("Finding duplicates…", "The catalog's duplicate report is being computed; this page updates when it is ready."));
      const here = location.hash;
      clearTimeout(againTimer);
      againTimer = setTimeout(() => { if (location.hash === here) load(true); }, (page.retry_after_s || 5) * 1000);
      return;
    }
    info.textContent = `${page.total.toLocaleString()} ${kind === "duplicates" ? "duplicate groups" : "variant families"}${page.status === "updating" ? " (updating…)" : ""}`;
    if (page.status === "updating") { // the last report, while the catalog's new one is computed: ask again
      const here = location.hash;
      clearTimeout(againTimer);
      againTimer = setTimeout(() => { if (location.hash === here) load(true); }, (page.retry_after_s || 5) * 1000);
    }
    body.replaceChildren(...(page.groups.length ? page.groups.map((g) => h("div", { class: "panel section dupgroup", "data-testid": "dup-group" },
      h("div", { class: "row" }, h("h3", {}, `Group ${g.group}`), h("span", { class: "badge" }, g.kind), h("span", { class: "muted small" }, `score ${g.score.toFixed(3)} · ${g.images.length} images`)),
      h("div", { class: "side-by-side" }, g.images.map((im) => {
        const pid = (im.product_ids || [])[0];
        return h("a", { class: "card", href: pid ? `#/product/${encodeURIComponent(pid)}` : undefined, "data-testid": "dup-image" },
          h("div", { class: "thumb" }, img(api.thumb(im.image_sha256), pid || im.source)),
          h("div", { class: "body" }, h("div", { class: "id" }, pid ? `#${pid}` : (im.source || "").split("/").pop()),
            (im.product_ids || []).length > 1 ? h("div", { class: "muted small" }, `also ${im.product_ids.slice(1).join(", ")}`) : null));
      }))))
      : [empty(kind === "duplicates" ? "No duplicates found" : "No variant families found", "Each group lists images of the catalog that copy one another.")]));
    const pages = Math.max(1, Math.ceil(page.total / limit));
    const cur = Math.floor(offset / limit) + 1;
    pager.replaceChildren(
      h("button", { disabled: cur <= 1, onclick: () => { offset -= limit; load(); } }, "← Previous"),
      h("span", { class: "muted small" }, `Page ${cur} of ${pages}`),
      h("button", { disabled: cur >= pages, onclick: () => { offset += limit; load(); } }, "Next →"));
  }
  view.replaceChildren(h("div", { class: "row" }, h("h1", {}, "Duplicates"), h("span", { class: "spacer" }), info, seg), body, pager);
  await load();
}

// ---------------------------------------------------------------- ingest
async function ingestView() {
  const fileInput = h("input", { type: "file", accept: "image/*", multiple: true, class: "hidden", "data-testid": "ingest-files" });
  const chosen = h("div", { class: "muted small" }, "No files chosen");
  const drop = h("label", { class: "drop", tabindex: "0" },
    h("div", { class: "icon", html: '<svg width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M12 16V4M6 10l6-6 6 6M4 20h16"/></svg>' }),
    h("div", {}, h("b", {}, "Drop product photos here or choose files"), chosen), fileInput);
  const pid = h("input", { type: "text", placeholder: "optional: one product id for all files", "aria-label": "product id" });
  const title = h("input", { type: "text", placeholder: "optional title", "aria-label": "title" });
  const bar = h("div", { class: "progress", "data-testid": "upload-progress" }, h("div"));
  const status = h("div", { class: "muted small", "data-testid": "upload-status" });
  let files = [];
  const setFiles = (list) => { files = [...list]; chosen.textContent = files.length ? `${files.length} file(s): ${files.map((f) => f.name).slice(0, 4).join(", ")}${files.length > 4 ? "…" : ""}` : "No files chosen"; };
  fileInput.addEventListener("change", () => setFiles(fileInput.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); setFiles(e.dataTransfer.files); });

  const jobsBody = h("tbody");
  async function refreshJobs() {
    try {
      const jobs = await api.get("/jobs");
      jobsBody.replaceChildren(...(jobs.length ? jobs : []).map((j) => h("tr", {},
        h("td", {}, h("code", {}, j.id.slice(0, 8))), h("td", {}, j.kind),
        h("td", {}, h("span", { class: `status ${j.status}` }, j.status)),
        h("td", {}, j.total ? `${j.done}/${j.total}` : ""),
        h("td", {}, j.report ? `${j.report.new_images} new, ${j.report.already_present} present, ${j.report.failed} failed` : (j.error || "")),
        h("td", {}, ["queued", "running"].includes(j.status) ? h("button", { class: "ghost danger", onclick: () => api.send("POST", `/jobs/${j.id}/cancel`).then(refreshJobs).catch((e) => toast(e.message, true)) }, "Cancel") : ""))));
      if (!jobs.length) jobsBody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No jobs yet in this server session.")));
      return jobs;
    } catch (err) { jobsBody.replaceChildren(h("tr", {}, h("td", { colspan: 6 }, err.message))); return []; }
  }

  async function follow(jobId) {
    for (;;) {
      const jobs = await refreshJobs();
      const j = jobs.find((x) => x.id === jobId);
      if (!j) return;
      if (j.total) bar.firstChild.style.width = pct(j.done / j.total);
      status.textContent = `Processing: ${j.status}${j.total ? ` · ${j.done}/${j.total}` : ""}`;
      if (["done", "failed", "cancelled"].includes(j.status)) {
        bar.firstChild.style.width = "100%";
        status.textContent = j.status === "done"
          ? `Done: ${j.report.new_images} new image(s), ${j.report.already_present} already present, ${j.report.failed} failed`
          : `Job ${j.status}${j.error ? ": " + j.error : ""}`;
        if (j.status === "done" && (j.products || []).length) {
          // uploads without a product id become new products with fresh ids: link each one
          status.append(" · ", ...j.products.slice(0, 10).flatMap((id, i) => [i ? ", " : "",
            h("a", { href: `#/product/${encodeURIComponent(id)}`, "data-testid": "upload-product" }, id)]));
        }
        state.facets = null;
        loadStats();
        return;
      }
      await new Promise((r) => setTimeout(r, 700));
    }
  }

  const go = h("button", { class: "primary", "data-testid": "upload-btn", onclick: async () => {
    if (!files.length) return toast("Choose some image files first", true);
    const form = new FormData();
    files.forEach((f) => form.append("files", f, f.name));
    if (pid.value.trim()) form.append("product_id", pid.value.trim());
    if (title.value.trim()) form.append("title", title.value.trim());
    go.disabled = true;
    bar.firstChild.style.width = "0";
    status.textContent = "Uploading…";
    try {
      const job = await api.upload("/ingest/upload", form, (f) => { bar.firstChild.style.width = pct(f * 0.5); status.textContent = `Uploading ${pct(f)}`; });
      await follow(job.id);
    } catch (err) {
      status.textContent = err.message;
      toast(err.message, true);
    } finally { go.disabled = false; }
  } }, "Upload and ingest");

  const urls = h("textarea", { placeholder: "https://shop.example/img/123.jpg\nhttps://…", "aria-label": "image URLs" });
  const goUrls = h("button", { onclick: async () => {
    const items = urls.value.split(/\s+/).filter(Boolean).map((url) => ({ url }));
    if (!items.length) return toast("Paste one URL per line", true);
    try { const job = await api.send("POST", "/ingest/urls", { items }); toast("URL job started"); follow(job.id); }
    catch (err) { toast(err.message, true); }
  } }, "Fetch and ingest");

  view.replaceChildren(h("h1", {}, "Ingest"),
    h("p", { class: "muted" }, `Images are checked on upload (format, at most ${Math.round((state.limits.max_upload_bytes || 0) / 1048576)} MiB each, pixel limits), stored, embedded and indexed in the background. Needs a key with role write.`),
    h("div", { class: "grid-2" },
      h("div", { class: "panel" }, h("h2", {}, "Upload photos"), drop,
        h("div", { class: "row section" }, pid, title), h("div", { class: "section" }, bar),
        h("div", { class: "row section" }, go, status)),
      h("div", { class: "panel" }, h("h2", {}, "From URLs"), urls, h("div", { class: "row section" }, goUrls),
        h("p", { class: "muted small" }, "Private, loopback and link-local addresses are refused."))),
    h("div", { class: "panel section" }, h("h2", {}, "Jobs"),
      h("table", { class: "jobs" }, h("thead", {}, h("tr", {}, ["Job", "Kind", "Status", "Progress", "Result", ""].map((x) => h("th", {}, x)))), jobsBody)));
  refreshJobs();
}

// ---------------------------------------------------------------- shell
async function loadStats() {
  try {
    const info = await api.get("/info");
    document.getElementById("stat").textContent = `${info.products.toLocaleString()} products · ${(info.images.ok || 0).toLocaleString()} images`;
  } catch { /* reads may need a key */ }
}

const ROUTES = { search: searchView, browse: browseView, quality: qualityView, duplicates: duplicatesView, ingest: ingestView };

async function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, ...rest] = hash.split("?")[0].split("/");
  document.onpaste = null;
  document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.view === (name || "search")));
  if (name === "product" && rest.length) return productView(decodeURIComponent(rest.join("/")));
  const fn = ROUTES[name] || searchView;
  try { await fn(); } catch (err) { showError(view, err); }
  view.focus({ preventScroll: true });
}

async function boot() {
  // the key dialog first: the button is in the page from the start, and a click made while the
  // server's feature list is still loading must open it (it once did nothing on a slow server)
  const dlg = document.getElementById("key-dialog");
  const keyInput = document.getElementById("key-input");
  const keyBtn = document.getElementById("key-btn");
  const paintKey = () => (keyBtn.textContent = api.getKey() ? "Key ✓" : "Key");
  keyBtn.addEventListener("click", () => { keyInput.value = api.getKey(); dlg.showModal(); });
  dlg.addEventListener("close", () => {
    if (dlg.returnValue === "save") api.setKey(keyInput.value.trim());
    if (dlg.returnValue === "clear") api.setKey("");
    paintKey();
    loadStats();
  });
  paintKey();
  try {
    const f = await fetch("/api/v1/features").then((r) => r.json());
    state.features = f.features;
    state.openReads = f.open_reads;
    state.limits = f.limits || {};
  } catch { /* keep defaults */ }
  if (!has("search")) document.querySelector('[data-view="search"]').classList.add("hidden");
  if (!has("quality")) document.querySelector('[data-view="quality"]').classList.add("hidden");
  if (!has("dedup")) document.querySelector('[data-view="duplicates"]').classList.add("hidden");
  loadStats();
  window.addEventListener("hashchange", route);
  if (!location.hash) location.hash = has("search") ? "#/search" : "#/browse";
  else route();
}

boot();
