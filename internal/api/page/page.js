// The campaign page: a list of campaigns and a live view of one, polling
// the public JSON API (GET /v1/campaigns, GET /v1/campaigns/{id}) every
// second. Every figure is written with textContent into an element with a
// stable data-testid, its raw number in data-value.
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat("en-US");

let timer = null;
let generation = 0; // bumped on navigation so a late answer is dropped

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString("en-GB", { hour12: false });
}

function clock(d) {
  return d.toLocaleTimeString("en-GB", { hour12: false });
}

function setStatus(ok, text) {
  const s = $("status");
  s.className = "status " + (ok ? "live" : "down");
  s.textContent = text;
}

async function getJSON(url) {
  const resp = await fetch(url, { cache: "no-store" });
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const msg = body && body.error ? body.error : resp.status + " " + resp.statusText;
    const err = new Error(msg);
    err.status = resp.status;
    throw err;
  }
  return body;
}

// route reads the location hash: "" (the list) or "#/<kind>/<id>".
function route() {
  const m = location.hash.match(/^#\/(coupon_batch|lottery)\/(.+)$/);
  if (!m) return null;
  return { kind: m[1], id: decodeURIComponent(m[2]) };
}

function campaignHash(c) {
  return "#/" + c.kind + "/" + encodeURIComponent(c.id);
}

function schedule(fn) {
  clearTimeout(timer);
  timer = setTimeout(fn, POLL_MS);
}

function navigate() {
  generation++;
  clearTimeout(timer);
  const r = route();
  $("list-view").hidden = r !== null;
  $("campaign-view").hidden = r === null;
  if (r === null) {
    document.title = "Promoflow · live campaigns";
    pollList(generation);
  } else {
    $("campaign-name").textContent = r.id;
    $("campaign-meta").textContent = "";
    $("tiles").replaceChildren();
    pollCampaign(generation, r);
  }
}

// ---- the list ----

async function pollList(gen) {
  try {
    const data = await getJSON("/v1/campaigns");
    if (gen !== generation) return;
    renderList(data);
    setStatus(true, "live · updated " + clock(new Date()));
  } catch (e) {
    if (gen !== generation) return;
    setStatus(false, "API unavailable: " + e.message);
  }
  if (gen === generation) schedule(() => pollList(gen));
}

function renderList(data) {
  const rows = $("campaign-rows");
  rows.replaceChildren();
  for (const c of data.campaigns) {
    const tr = el("tr", { "data-testid": "campaign-row-" + c.id });
    const name = el("td");
    const a = el("a", { href: campaignHash(c), "data-testid": "campaign-link-" + c.id }, c.name || c.id);
    name.append(a);
    if (c.name) name.append(el("div", { class: "note" }, c.id));
    tr.append(name);
    tr.append(el("td", {}, c.kind === "lottery" ? "lottery · " + c.type : "coupon batch"));
    const st = el("td");
    st.append(el("span", { class: "pill " + c.status }, c.status));
    tr.append(st);
    tr.append(el("td", {}, time(c.from)));
    tr.append(el("td", {}, time(c.until)));
    tr.append(el("td", { class: "num" }, c.kind === "coupon_batch" ? fmt.format(c.total_stock || 0) : (c.draw_at ? "draws " + time(c.draw_at) : "—")));
    rows.append(tr);
  }
  $("list-empty").hidden = data.campaigns.length > 0;
  const notes = Object.entries(data.unavailable || {}).map(([k, v]) => k + ": " + v);
  $("list-note").textContent = notes.join("; ");
}

// ---- one campaign ----

async function pollCampaign(gen, r) {
  const url = "/v1/campaigns/" + encodeURIComponent(r.id) + "?kind=" + r.kind;
  try {
    const d = await getJSON(url);
    if (gen !== generation) return;
    $("error").hidden = true;
    renderCampaign(d);
    setStatus(true, "live · figures as of " + clock(new Date(d.as_of)));
  } catch (e) {
    if (gen !== generation) return;
    const box = $("error");
    box.hidden = false;
    box.textContent = (e.status === 404 ? "Unknown campaign: " : "Cannot read the campaign: ") + e.message;
    setStatus(false, e.status === 404 ? "unknown campaign" : "figures unavailable");
  }
  if (gen === generation) schedule(() => pollCampaign(gen, r));
}

// tile shows one figure: value is a number (shown with separators, raw in
// data-value), a string, or null (unavailable).
function tile(id, label, value, opts) {
  opts = opts || {};
  const box = el("div", { class: "tile " + (opts.tone || ""), "data-testid": "tile-" + id });
  box.append(el("div", { class: "label" }, label));
  const v = el("div", { class: "value", id: "v-" + id, "data-testid": id });
  if (value === null || value === undefined) {
    v.textContent = "—";
    v.setAttribute("data-value", "");
  } else if (typeof value === "number") {
    v.textContent = fmt.format(value);
    v.setAttribute("data-value", String(value));
  } else {
    v.textContent = value;
    v.setAttribute("data-value", value);
  }
  box.append(v);
  if (opts.hint) box.append(el("div", { class: "hint" }, opts.hint));
  return box;
}

function renderCampaign(d) {
  const c = d.campaign;
  const un = d.unavailable || {};
  document.title = (c.name || c.id) + " · Promoflow";
  $("campaign-name").textContent = c.name || c.id;
  const kind = c.kind === "lottery" ? "lottery · " + c.type : "coupon batch";
  $("campaign-meta").textContent = c.id + " · " + kind + " · " + c.status + " · " + time(c.from) + " → " + time(c.until);
  const tiles = [];
  let reasons = {};
  if (d.coupon) {
    const f = d.coupon;
    reasons = f.rejected_by;
    tiles.push(tile("claims", "Claims decided", f.claims));
    tiles.push(tile("grants", "Grants", f.grants, { tone: "ok" }));
    tiles.push(tile("rejections", "Rejections", f.rejections, { tone: "bad" }));
    tiles.push(tile("remaining-stock", "Remaining stock", f.remaining_stock === undefined ? null : f.remaining_stock,
      { hint: "of " + fmt.format(f.total_stock) + (un.stock ? " · " + un.stock : " · Redis, live") }));
    tiles.push(tile("redemptions", "Redemptions", f.redemptions, { hint: "coupons used by an order" }));
    $("accepted-label").textContent = "granted";
  } else if (d.lottery) {
    const f = d.lottery;
    reasons = f.rejected_by;
    tiles.push(tile("participants", "Participants", f.participants));
    tiles.push(tile("entries", "Entries decided", f.entries));
    tiles.push(tile("rejections", "Entries rejected", f.rejected, { tone: "bad" }));
    tiles.push(tile("draw-status", "Draw", f.draw_status, {
      tone: "small",
      hint: f.drawn_at ? "drawn " + time(f.drawn_at) + (f.draw_trigger ? " (" + f.draw_trigger + ")" : "")
        : (f.draw_at ? "draws " + time(f.draw_at) : "no scheduled draw"),
    }));
    tiles.push(tile("winners", "Winners", f.winners, { tone: "ok" }));
    $("accepted-label").textContent = "accepted";
  }
  tiles.push(tile("dlq", "Dead letters", d.dlq ? d.dlq.records : null, { hint: un.dlq ? un.dlq : "whole DLQ topic" }));
  const t = d.throughput;
  tiles.push(tile("throughput-total", "Decisions in window", t ? t.accepted + t.rejected : null,
    { hint: t ? fmt.format(t.accepted) + " " + $("accepted-label").textContent + ", " + fmt.format(t.rejected) + " rejected" : (un.throughput || "") }));
  $("tiles").replaceChildren(...tiles);

  renderReasons(reasons || {});
  renderThroughput(t);
  renderTiers(d.lottery ? d.lottery.tiers : null);

  const notes = Object.entries(un).map(([k, v]) => k + ": " + v);
  $("unavailable").hidden = notes.length === 0;
  $("unavailable").textContent = notes.length ? "Unavailable — " + notes.join("; ") : "";
}

function renderReasons(byReason) {
  const entries = Object.entries(byReason).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const rows = $("reason-rows");
  rows.replaceChildren();
  for (const [reason, n] of entries) {
    const tr = el("tr");
    tr.append(el("td", {}, reason));
    tr.append(el("td", { class: "num", "data-testid": "rejected-" + reason, "data-value": String(n) }, fmt.format(n)));
    rows.append(tr);
  }
  const svg = $("rejections-chart");
  svg.replaceChildren();
  if (entries.length === 0) {
    svg.setAttribute("viewBox", "0 0 360 60");
    svg.append(svgEl("text", { x: 180, y: 34, "text-anchor": "middle", class: "empty" }, "no rejections"));
    return;
  }
  const shown = entries.slice(0, 8);
  const max = Math.max(...shown.map((e) => e[1]), 1);
  const left = 130, width = 360 - left - 50, barH = 22;
  svg.setAttribute("viewBox", "0 0 360 " + (14 + shown.length * (barH + 4)));
  shown.forEach(([reason, n], i) => {
    const y = 10 + i * (barH + 4);
    svg.append(svgEl("text", { x: left - 6, y: y + barH / 2 + 4, "text-anchor": "end" }, reason.length > 20 ? reason.slice(0, 19) + "…" : reason));
    svg.append(svgEl("rect", { x: left, y: y, width: Math.max(1, (n / max) * width), height: barH, class: "bad", rx: 2 }));
    svg.append(svgEl("text", { x: left + (n / max) * width + 4, y: y + barH / 2 + 4 }, fmt.format(n)));
  });
}

function renderThroughput(t) {
  const svg = $("throughput-chart");
  svg.replaceChildren();
  const W = 720, H = 220, L = 48, R = 10, T = 10, B = 24;
  if (!t) {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "throughput unavailable"));
    return;
  }
  const unit = t.bucket_seconds === 1 ? "second" : t.bucket_seconds + " seconds";
  $("bucket-label").textContent = unit;
  $("window-label").textContent = t.window_seconds % 60 === 0 ? t.window_seconds / 60 + " minutes" : t.window_seconds + " seconds";
  const b = t.buckets;
  const n = b.length;
  const max = Math.max(1, ...b.map((x) => x.accepted + x.rejected));
  const x = (i) => L + (i / Math.max(1, n - 1)) * (W - L - R);
  const y = (v) => H - B - (v / max) * (H - T - B);
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, fmt.format(v)));
  }
  for (const i of [0, Math.floor((n - 1) / 2), n - 1]) {
    if (i < 0 || !b[i]) continue;
    svg.append(svgEl("text", { x: x(i), y: H - 6, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle" }, clock(new Date(b[i].start))));
  }
  // Rejected stacked under accepted: two areas over the same baseline.
  const area = (top, cls) => {
    let d = "M" + x(0) + "," + y(0);
    b.forEach((p, i) => { d += " L" + x(i).toFixed(1) + "," + y(top(p)).toFixed(1); });
    d += " L" + x(n - 1) + "," + y(0) + " Z";
    svg.append(svgEl("path", { d: d, class: cls }));
  };
  area((p) => p.accepted + p.rejected, "area-ok");
  area((p) => p.rejected, "area-bad");
}

function renderTiers(tiers) {
  $("tiers-box").hidden = !tiers || tiers.length === 0;
  const rows = $("tier-rows");
  rows.replaceChildren();
  for (const t of tiers || []) {
    const tr = el("tr");
    tr.append(el("td", {}, t.tier_id));
    tr.append(el("td", {}, t.name || ""));
    tr.append(el("td", { class: "num" }, fmt.format(t.stock)));
    tr.append(el("td", { class: "num", "data-testid": "tier-" + t.tier_id + "-winners", "data-value": String(t.winners) }, fmt.format(t.winners)));
    rows.append(tr);
  }
}

window.addEventListener("hashchange", navigate);
navigate();
