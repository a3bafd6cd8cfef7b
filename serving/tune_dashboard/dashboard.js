// The Tune dashboard page: polls the JSON API every 2 s and redraws what changed; plots are plain SVG.
"use strict";

const ROOT = document.body.dataset.root;
const POLL_MS = 2000;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const view = { listText: "", detailText: "", list: [], detail: null, selected: null, sort: { key: "score", dir: 0 } };

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (v, digits = 4) => (v === null || v === undefined ? "–" : typeof v === "number"
  ? (Number.isInteger(v) && Math.abs(v) < 1e6 ? String(v) : Number(v.toPrecision(digits)).toString()) : String(v));
const secs = (s) => (s === null || s === undefined ? "–" : s < 120 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(1)} min`);

function selectedFromHash() {
  try { return decodeURIComponent(location.hash.slice(1)) || null; } catch { return null; }
}

async function fetchText(url) {
  const response = await fetch(url, { cache: "no-store" });
  return { status: response.status, text: await response.text() };
}

let timer = null, busy = false, again = false;

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(refresh, ms);
}

async function refresh() {
  if (busy) { again = true; return; }  // a selection changed mid-poll: poll again right after
  busy = true;
  try {
    // The list and the selected experiment load in parallel: one round trip per poll, not two.
    const wanted = selectedFromHash() || view.selected;
    const [list, first] = await Promise.all([fetchText(`${ROOT}/api/experiments`),
      wanted ? fetchText(`${ROOT}/api/experiments/${encodeURIComponent(wanted)}`) : null]);
    if (list.status !== 200) throw new Error(`list: HTTP ${list.status}`);
    if (list.text !== view.listText) {
      view.listText = list.text;
      view.list = JSON.parse(list.text);
    }
    view.selected = wanted || (view.list[0] && view.list[0].name) || null;
    renderList();
    if (view.selected) {
      const detail = first || await fetchText(`${ROOT}/api/experiments/${encodeURIComponent(view.selected)}`);
      if (detail.status === 404) {
        view.detail = null; view.detailText = "";
        $("detail").hidden = true;
      } else if (detail.status === 200 && detail.text !== view.detailText) {
        view.detailText = detail.text;
        view.detail = JSON.parse(detail.text);
        renderDetail();
      }
    }
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("updated").textContent = `cannot reach the dashboard API (${err.message}); retrying`;
  } finally {
    busy = false;
    schedule(again ? 0 : POLL_MS);
    again = false;
  }
}

function renderList() {
  $("no-experiments").hidden = view.list.length > 0;
  $("experiments").querySelector("tbody").innerHTML = view.list.map((e) => `
    <tr data-name="${esc(e.name)}" class="${e.name === view.selected ? "selected" : ""}">
      <td><a href="#${esc(encodeURIComponent(e.name))}">${esc(e.name)}</a></td><td>${esc(e.workload)}</td>
      <td>${esc(e.searcher)}</td><td>${esc(e.dataset)}</td>
      <td><span class="badge ${esc(e.status)}">${esc(e.status)}</span></td>
      <td class="num">${fmt(e.best_score)}</td><td class="num">${e.trials_done} / ${e.trials_total}</td>
      <td class="num">${secs(e.elapsed_s)}${e.budget_s ? " / " + secs(e.budget_s) : ""}</td></tr>`).join("");
}

function renderDetail() {
  const d = view.detail;
  $("detail").hidden = false;
  $("detail-title").textContent = d.name;
  $("detail-meta").textContent = [d.workload && `workload ${d.workload}`, d.searcher && `searcher ${d.searcher}`,
    d.dataset && `data set ${d.dataset}`, `metric ${d.metric || "?"} (${d.mode})`, d.status,
    `${d.trials_done} of ${d.trials_total} trials done`, d.sessions > 1 ? `restored ${d.sessions - 1}×` : "",
    `folder ${d.path}`].filter(Boolean).join(" · ");
  $("anytime").innerHTML = linePlot(d.anytime.map((s) => ({ label: s.label, points: s.points })),
    { width: 600, height: 300, xLabel: "seconds since start", yLabel: `best ${d.metric}`, step: true, id: "anytime-plot",
      legendBottom: d.mode !== "min" });
  renderCurves(d);
  renderParams(d);
  renderTrials();
}

function renderCurves(d) {
  $("curves-figure").hidden = d.curves.length === 0;
  if (!d.curves.length) return;
  const algorithms = [...new Set(d.curves.map((c) => c.algorithm))];
  const series = d.curves.map((c) => ({ label: c.algorithm, points: c.points,
    color: COLORS[algorithms.indexOf(c.algorithm) % COLORS.length] }));
  $("curves").innerHTML = linePlot(series, { width: 600, height: 300, xLabel: "env steps", yLabel: "episode return",
    legend: algorithms.map((a, i) => ({ label: a, color: COLORS[i % COLORS.length] })), id: "curves-plot" });
}

function renderParams(d) {
  const scores = d.trials.map((t) => t.score);
  const panels = d.params.map((p) => scatterPanel(p, scores, d.metric));
  $("params").innerHTML = panels.join("") || `<p class="empty">No hyperparameter varies yet.</p>`;
}

function sortValue(t, key) {
  if (key === "config") return JSON.stringify(t.config);
  return t[key];
}

function renderTrials() {
  const d = view.detail;
  if (!view.sort.dir) view.sort.dir = d.mode === "min" ? 1 : -1;  // best trials first
  const { key, dir } = view.sort;
  const rows = [...d.trials].sort((a, b) => {
    const x = sortValue(a, key), y = sortValue(b, key);
    if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  });
  const best = d.best_score;
  $("trial-count").textContent = `(${d.trials.length})`;
  document.querySelectorAll("#trials th").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.key === key);
    th.classList.toggle("asc", th.dataset.key === key && dir === 1);
  });
  $("trials").querySelector("tbody").innerHTML = rows.map((t) => `
    <tr class="${t.score !== null && t.score === best ? "best" : ""}"><td>${esc(t.trial_id)}</td>
      <td><span class="badge ${esc(t.status)}">${esc(t.status)}</span></td><td class="num">${fmt(t.score)}</td>
      <td class="num">${fmt(t.fit_time, 3)}</td><td class="num">${fmt(t.end_s, 4)}</td>
      <td class="config">${esc(Object.entries(t.config).map(([k, v]) => `${k}=${fmt(v)}`).join(", "))}</td></tr>`).join("");
}

// ---- plots --------------------------------------------------------------------------------------------------

function niceTicks(lo, hi, count) {
  if (lo === hi) { lo -= 0.5; hi += 0.5; }
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!isFinite(lo)) return [0, 1];
  if (lo === hi) return [lo - (Math.abs(lo) * 0.05 || 0.5), hi + (Math.abs(hi) * 0.05 || 0.5)];
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

function frame(o, xs, ys) {
  const m = { l: 52, r: 12, t: 10, b: o.rotate ? 58 : 34 };
  const w = o.width - m.l - m.r, h = o.height - m.t - m.b;
  const [x0, x1] = o.xDomain || extent(xs), [y0, y1] = extent(ys);
  const sx = (v) => m.l + ((o.xMap ? o.xMap(v) : v) - x0) / (x1 - x0) * w;
  const sy = (v) => m.t + h - (v - y0) / (y1 - y0) * h;
  let svg = "";
  for (const t of niceTicks(y0, y1, 5)) {
    svg += `<line class="grid" x1="${m.l}" x2="${m.l + w}" y1="${sy(t)}" y2="${sy(t)}"/>`;
    svg += `<text x="${m.l - 4}" y="${sy(t) + 3}" text-anchor="end">${fmt(t, 3)}</text>`;
  }
  if (!o.xTicks) {
    for (const t of niceTicks(x0, x1, 6)) {
      svg += `<text x="${sx(t)}" y="${m.t + h + 14}" text-anchor="middle">${fmt(t, 3)}</text>`;
    }
  } else {
    for (const [v, label] of o.xTicks) {
      svg += o.rotate  // many categories: slanted labels that do not overlap
        ? `<text transform="translate(${sx(v)} ${m.t + h + 10}) rotate(-40)" text-anchor="end">${esc(label)}</text>`
        : `<text x="${sx(v)}" y="${m.t + h + 14}" text-anchor="middle">${esc(label)}</text>`;
    }
  }
  svg += `<line class="axis" x1="${m.l}" x2="${m.l + w}" y1="${m.t + h}" y2="${m.t + h}"/>`;
  svg += `<line class="axis" x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + h}"/>`;
  svg += `<text x="${m.l + w / 2}" y="${o.height - 4}" text-anchor="middle">${esc(o.xLabel)}</text>`;
  svg += `<text transform="translate(12 ${m.t + h / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`;
  return { svg, sx, sy, m, w, h };
}

function linePlot(series, o) {
  const all = series.flatMap((s) => s.points);
  const open = `<svg id="${o.id}" xmlns="http://www.w3.org/2000/svg" width="${o.width}" height="${o.height}" viewBox="0 0 ${o.width} ${o.height}">`;
  if (!all.length) {
    return `${open}<text x="${o.width / 2}" y="${o.height / 2}" text-anchor="middle">no finished trial yet</text></svg>`;
  }
  const f = frame(o, all.map((p) => p[0]).concat([0]), all.map((p) => p[1]));
  let body = f.svg;
  const labels = [...new Set(series.map((s) => s.label))];
  series.forEach((s) => {
    if (!s.points.length) return;
    const color = s.color || COLORS[labels.indexOf(s.label) % COLORS.length];
    let d = "";
    s.points.forEach(([x, y], i) => {
      if (i === 0) d += `M${f.sx(x)},${f.sy(y)}`;
      else d += o.step ? `H${f.sx(x)}V${f.sy(y)}` : `L${f.sx(x)},${f.sy(y)}`;
    });
    if (o.step) d += `H${f.m.l + f.w}`;
    body += `<path class="series" d="${d}" fill="none" stroke="${color}" stroke-width="${o.step ? 2 : 1.2}" opacity="0.9"/>`;
    if (o.step) {  // a dot where the best so far improved
      s.points.forEach(([x, y], i) => {
        if (i === 0 || y !== s.points[i - 1][1]) body += `<circle cx="${f.sx(x)}" cy="${f.sy(y)}" r="2.5" fill="${color}"/>`;
      });
    }
  });
  const legend = o.legend || labels.map((l, i) => ({ label: l, color: COLORS[i % COLORS.length] }));
  legend.forEach((e, i) => {
    const y = o.legendBottom ? f.m.t + f.h - 8 - (legend.length - 1 - i) * 14 : f.m.t + 12 + i * 14;
    body += `<rect x="${f.m.l + f.w - 120}" y="${y - 8}" width="10" height="10" fill="${e.color}"/>`;
    body += `<text x="${f.m.l + f.w - 106}" y="${y + 1}">${esc(e.label)}</text>`;
  });
  return `${open}${body}</svg>`;
}

function scatterPanel(param, scores, metric) {
  const pairs = param.values.map((v, i) => [v, scores[i]]).filter(([v, s]) => v !== null && s !== null);
  const o = { width: 240, height: 170, xLabel: param.name, yLabel: metric };
  const open = () => `<svg class="param" xmlns="http://www.w3.org/2000/svg" width="${o.width}" height="${o.height}">`;
  if (!pairs.length) return `${open()}<text x="120" y="85" text-anchor="middle">${esc(param.name)}: no scores yet</text></svg>`;
  let xs;
  if (param.kind === "numeric") {
    xs = pairs.map(([v]) => v);
    const lo = Math.min(...xs), hi = Math.max(...xs);
    if (lo > 0 && hi / lo > 100) {  // spans decades: a log axis
      o.xMap = Math.log10;
      o.xDomain = extent(xs.map(Math.log10));
      o.xTicks = niceTicks(o.xDomain[0], o.xDomain[1], 4).filter(Number.isInteger).map((t) => [10 ** t, `1e${t}`]);
    }
  } else {
    const cats = [...new Set(pairs.map(([v]) => v))].sort();
    o.xDomain = [-0.5, cats.length - 0.5];
    o.rotate = cats.length > 4;
    o.height += o.rotate ? 24 : 0;
    o.xTicks = cats.map((c, i) => [i, c.length > 12 ? c.slice(0, 11) + "…" : c]);
    xs = pairs.map(([v], i) => cats.indexOf(v) + ((i * 0.6180339) % 1 - 0.5) * 0.5);  // deterministic jitter
  }
  const f = frame(o, xs, pairs.map(([, s]) => s));
  let body = f.svg;
  pairs.forEach(([, s], i) => { body += `<circle cx="${f.sx(xs[i])}" cy="${f.sy(s)}" r="2.5" fill="#2563eb" opacity="0.6"/>`; });
  return `${open()}${body}</svg>`;
}

// ---- events -------------------------------------------------------------------------------------------------

$("experiments").addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-name]");
  if (row) location.hash = encodeURIComponent(row.dataset.name);
});
document.querySelector("#trials thead").addEventListener("click", (event) => {
  const key = event.target.dataset.key;
  if (!key || !view.detail) return;
  const best = view.detail.mode === "min" ? 1 : -1;
  view.sort = { key, dir: view.sort.key === key ? -view.sort.dir : (key === "score" ? best : 1) };
  renderTrials();
});
window.addEventListener("hashchange", () => {
  view.detailText = "";
  view.sort = { key: "score", dir: 0 };
  schedule(0);
});
refresh();
