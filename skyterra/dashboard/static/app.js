// skyterra dashboard: plain JS over the JSON endpoints (see skyterra/dashboard/app.py).
// Every value from the server goes into the page as text (textContent), never as HTML.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const TERMINAL = ["SUCCEEDED", "FAILED", "CANCELLED", "FAILED_SETUP"];
const MAX_LOG_LINES = 5000;
const state = { features: {}, clusters: [], selected: null, logs: null, source: null };

// --- helpers ---------------------------------------------------------------------------
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function badge(status) {
  return el("span", { class: `badge s-${status}`, text: status || "?" });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.max(0, Math.floor(seconds));
  if (s >= 86400) return `${Math.floor(s / 86400)}d${String(Math.floor(s % 86400 / 3600)).padStart(2, "0")}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

function clock(epoch) {
  if (!epoch) return "-";
  const d = new Date(epoch * 1000);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

function money(value) {
  if (value === null || value === undefined) return "-";
  return value < 10 ? `$${value.toFixed(value < 0.1 && value > 0 ? 4 : 2)}` : `$${value.toFixed(2)}`;
}

function autostop(value) {
  if (value === null || value === undefined || value === false) return "-";
  if (typeof value === "number") return `${value} min idle`;
  if (typeof value === "object") {
    const minutes = value.idle_minutes ?? value.minutes;
    const then = value.down ? "down" : "stop";
    return minutes !== undefined ? `${then} after ${minutes} min idle` : JSON.stringify(value);
  }
  return String(value);
}

function toast(message, bad = false) {
  const node = el("div", { class: bad ? "toast bad" : "toast", text: message });
  document.getElementById("toasts").append(node);
  setTimeout(() => node.remove(), bad ? 9000 : 5000);
}

async function request(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options,
    headers: { Accept: "application/json", ...(options.headers || {}) } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// Replace a table's rows, but keep a row's last cell (its buttons) when the row's key and
// set of buttons are unchanged: the page polls every few seconds, and a button swapped for
// a copy between the user's press and release would swallow the click.
function patchRows(body, rows) {
  const old = new Map([...body.children].map((row) => [row.dataset.key, row]));
  const kept = rows.map((row) => {
    const before = old.get(row.dataset.key);
    if (!before || before.dataset.sig !== row.dataset.sig) return row;
    const cells = [...row.children];
    [...before.children].slice(0, -1).forEach((cell, i) => cell.replaceWith(cells[i]));
    before.className = row.className;
    return before;
  });
  body.replaceChildren(...kept);
}

function signature(cell) {
  return [...cell.querySelectorAll("button")].map((b) => b.dataset.action).join(",");
}

const post = (path) => request(path, { method: "POST", headers: { "X-Skyterra-CSRF": CSRF } });
const clusterPath = (name) => `/api/clusters/${encodeURIComponent(name)}`;

// A confirmation in a <dialog>; resolves true only when the user confirms.
function confirmAction(title, text, verb) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = verb;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function act(title, text, verb, path, done) {
  if (!(await confirmAction(title, text, verb))) return;
  try {
    const result = await post(path);
    toast(done(result));
  } catch (error) {
    toast(error.message, true);
  }
  refresh();
}

// --- clusters --------------------------------------------------------------------------
function clusterActions(c) {
  const cell = el("td", { class: "actions" });
  const stop = (event) => event.stopPropagation();
  if (state.features.stop && c.status === "UP") {
    cell.append(el("button", { data: { action: "stop" }, text: "Stop", onclick: (e) => {
      stop(e);
      act(`Stop cluster ${c.name}?`, "Its nodes are stopped; disks are kept and still cost.",
          "Stop", `${clusterPath(c.name)}/stop`, () => `Cluster ${c.name} stopped.`);
    } }));
  }
  if (state.features.start && c.status === "STOPPED") {
    cell.append(el("button", { data: { action: "start" }, text: "Start", onclick: (e) => {
      stop(e);
      act(`Start cluster ${c.name}?`, "Its nodes start again and are billed.", "Start",
          `${clusterPath(c.name)}/start`, () => `Cluster ${c.name} started.`);
    } }));
  }
  cell.append(el("button", { class: "danger", data: { action: "destroy" }, text: "Destroy",
    onclick: (e) => {
      stop(e);
      act(`Destroy cluster ${c.name}?`, `All ${c.num_nodes} node(s) and their disks are deleted ` +
          "(terraform destroy); running jobs die with them. This cannot be undone.", "Destroy",
          `${clusterPath(c.name)}/down`, () => `Cluster ${c.name} destroyed.`);
    } }));
  return cell;
}

function clusterRow(c) {
  const where = [c.cloud || "-", c.zone || c.region].filter(Boolean).join(" / ");
  const gpus = c.accelerator ? ` · ${c.accelerator}:${c.accelerator_count}` : "";
  const nodes = el("td", { class: "nodes" });
  for (const n of c.nodes) {
    nodes.append(el("div", {}, el("span", { class: "role", text: n.name }), n.ip,
      n.private_ip && n.private_ip !== n.ip ? el("span", { class: "small", text: ` (${n.private_ip})` }) : null));
  }
  if (!c.nodes.length) nodes.append(el("span", { class: "small", text: `${c.num_nodes} planned` }));
  const row = el("tr", { data: { cluster: c.name }, onclick: () => selectCluster(c.name) },
    el("td", { class: "name", text: c.name },
       c.owner === "external" ? el("div", { class: "small", text: "attached" }) : null),
    el("td", {}, badge(c.status),
       c.last_error ? el("div", { class: "small", text: c.last_error.slice(0, 160) }) : null),
    el("td", { text: where }),
    el("td", { text: `${c.instance_type || "-"}${gpus}` }),
    nodes,
    el("td", { class: "num", text: money(c.price) }),
    el("td", { class: "num" }, duration(c.uptime_s),
       c.cost_so_far !== null ? el("div", { class: "small", text: `≈ ${money(c.cost_so_far)}` }) : null),
    el("td", { text: autostop(c.autostop) }),
    clusterActions(c));
  if (c.name === state.selected) row.classList.add("selected");
  row.dataset.key = c.name;
  row.dataset.sig = signature(row.lastElementChild);
  return row;
}

function renderClusters() {
  const body = document.querySelector("#clusters tbody");
  patchRows(body, state.clusters.map(clusterRow));
  document.getElementById("clusters-empty").hidden = state.clusters.length > 0;
  document.getElementById("clusters").hidden = state.clusters.length === 0;
}

function selectCluster(name) {
  state.selected = name;
  renderClusters();
  refreshJobs();
}

// --- jobs ------------------------------------------------------------------------------
function jobRow(cluster, job) {
  const actions = el("td", { class: "actions" },
    el("button", { data: { action: "logs" }, text: "Logs", onclick: () => openLogs(cluster, job.job_id) }));
  if (!TERMINAL.includes(job.status)) {
    actions.append(el("button", { class: "danger", data: { action: "cancel" }, text: "Cancel",
      onclick: () => act(`Cancel job ${job.job_id} on ${cluster}?`,
        "Its processes are stopped on every node (TERM, then KILL).", "Cancel job",
        `${clusterPath(cluster)}/jobs/${job.job_id}/cancel`,
        (r) => r.cancelled.length ? `Job ${job.job_id} cancelled.` : `Job ${job.job_id} had already ended.`) }));
  }
  const row = el("tr", { data: { job: job.job_id } },
    el("td", { class: "num", text: job.job_id }),
    el("td", { text: job.name || "-" }),
    el("td", {}, badge(job.status)),
    el("td", { text: clock(job.submitted_at) }),
    el("td", { class: "num", text: duration(job.duration_s) }),
    el("td", { class: "num", text: job.exit_code ?? "-" }),
    el("td", { text: job.failed_node || "-" }),
    actions);
  row.dataset.key = `${cluster}/${job.job_id}`;
  row.dataset.sig = signature(actions);
  return row;
}

async function refreshJobs() {
  const card = document.getElementById("jobs-card");
  const name = state.selected;
  if (!name) { card.hidden = true; return; }
  card.hidden = false;
  document.getElementById("jobs-cluster").textContent = name;
  const empty = document.getElementById("jobs-empty");
  const body = document.querySelector("#jobs tbody");
  try {
    const jobs = await request(`${clusterPath(name)}/jobs`);
    if (state.selected !== name) return;
    patchRows(body, jobs.slice().reverse().map((job) => jobRow(name, job)));
    empty.hidden = jobs.length > 0;
    empty.textContent = "No jobs yet.";
  } catch (error) {
    body.replaceChildren();
    empty.hidden = false;
    empty.textContent = error.message;
  }
}

// --- logs (server-sent events) ---------------------------------------------------------
function logState(text, kind) {
  const node = document.getElementById("logs-state");
  node.textContent = text;
  node.className = `badge s-${kind}`;
}

function appendLog(line, cls) {
  const pre = document.getElementById("log");
  const match = /^(\([^)]*\))\s?(.*)$/.exec(line);
  const row = el("div", cls ? { class: cls } : {});
  if (match && !cls) {
    const rank = /rank=(\d+)/.exec(match[1]);
    const color = rank ? Number(rank[1]) % 6 : 0;
    row.append(el("span", { class: `prefix n${color}`, text: match[1] }), ` ${match[2]}`);
  } else {
    row.textContent = line;
  }
  pre.append(row);
  while (pre.childElementCount > MAX_LOG_LINES) pre.firstElementChild.remove();
  if (document.getElementById("logs-follow").checked) pre.scrollTop = pre.scrollHeight;
}

function openLogs(cluster, jobId) {
  if (state.source) state.source.close();
  state.logs = { cluster, jobId };
  document.getElementById("logs-card").hidden = false;
  document.getElementById("logs-job").textContent = `${jobId} on ${cluster}`;
  document.getElementById("log").replaceChildren();
  logState("streaming", "streaming");
  const source = new EventSource(`${clusterPath(cluster)}/jobs/${jobId}/logs`);
  state.source = source;
  source.addEventListener("line", (e) => appendLog(JSON.parse(e.data)));
  source.addEventListener("end", (e) => {
    const info = JSON.parse(e.data);
    source.close();
    logState(`${info.status}${info.exit_code !== null ? ` (exit ${info.exit_code})` : ""}`, info.status);
    appendLog(`— job ${jobId} ${info.status.toLowerCase()} —`, "info");
    refreshJobs();
  });
  source.addEventListener("failure", (e) => {
    source.close();
    logState("error", "error");
    appendLog(JSON.parse(e.data).message, "info");
  });
  source.addEventListener("closed", (e) => {
    source.close();
    logState("server stopped", "error");
    appendLog(JSON.parse(e.data).message, "info");
  });
  source.onerror = () => {  // the connection broke: do not let EventSource replay the log
    if (state.source !== source || source.readyState === EventSource.CLOSED) return;
    source.close();
    logState("disconnected", "error");
    appendLog("— the connection to the dashboard was lost; press Logs to reopen —", "info");
  };
  document.getElementById("logs-card").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

// --- cost chart (SVG) ------------------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
const LINE_COLORS = ["#2f6fdf", "#e07b00", "#12805c", "#a43cc4", "#c4320a", "#0f8b8d"];

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// A round axis step near `rough`: 1, 2, 2.5 or 5 times a power of ten.
function niceStep(rough) {
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= rough);
}

function drawCost(data) {
  document.getElementById("cost-note").textContent = data.note;
  document.getElementById("cost-total").textContent = `Total so far: ${money(data.total_cost)}`;
  const box = document.getElementById("cost-chart");
  if (!data.clusters.length) {
    box.replaceChildren(el("p", { class: "empty", text: "No billed time yet." }));
    return;
  }
  const W = 640, H = 240, L = 56, R = 12, T = 12, B = 28;
  const t0 = Math.min(...data.clusters.map((c) => c.points[0][0]));
  const t1 = Math.max(data.now, t0 + 60);
  const top = Math.max(data.total_cost, ...data.clusters.map((c) => c.points[1][1]));
  const step = niceStep(top > 0 ? top / 4 : 0.25);  // free clusters (local): a flat line at $0
  const ymax = Math.max(step * 4, Math.ceil(top / step) * step);
  const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = (v) => H - B - v / ymax * (H - T - B);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
                             "aria-label": "cumulative cost over time" });
  for (let v = 0; v <= ymax + step / 2; v += step) {
    chart.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    chart.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, money(v)));
  }
  const short = t1 - t0 < 600;  // a few minutes: label the seconds too
  for (let i = 0; i <= 3; i++) {
    const t = t0 + (t1 - t0) * i / 3;
    chart.append(svg("text", { x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle" },
      new Date(t * 1000).toLocaleTimeString([], short ? {} : { hour: "2-digit", minute: "2-digit" })));
  }
  chart.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  // The total goes first, dashed, so that it does not hide a cluster's line it runs along.
  const series = data.clusters.length > 1
    ? [{ name: "total", points: data.total, color: "#98a2b3", width: 2, dash: "6 4" }] : [];
  data.clusters.forEach((c, i) => series.push({ name: c.name, points: c.points, color: LINE_COLORS[i % 6], width: 2 }));
  const legend = svg("g", { class: "legend" });
  series.forEach((s, i) => {
    chart.append(svg("polyline", { fill: "none", stroke: s.color, "stroke-width": s.width,
      "stroke-dasharray": s.dash || "none", points: s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
    legend.append(svg("rect", { x: L + 10, y: T + 4 + i * 16, width: 10, height: 10, fill: s.color }));
    legend.append(svg("text", { x: L + 26, y: T + 13 + i * 16 }, s.name));
  });
  chart.append(legend);
  box.replaceChildren(chart);
}

// --- managed jobs ----------------------------------------------------------------------
function drawManaged(rows) {
  const table = document.getElementById("managed");
  table.hidden = rows.length === 0;
  document.getElementById("managed-note").textContent = rows.length ? "" : "No managed jobs.";
  table.querySelector("tbody").replaceChildren(...rows.map((job) => {
    const line = el("div", { class: "timeline" });
    for (const ev of job.events || []) {
      line.append(el("span", { class: "ev", title: ev.detail || "" },
        el("b", { text: clock(ev.at) }), ev.event || ""));
    }
    return el("tr", { data: { managedJob: job.job_id } },
      el("td", { class: "num", text: job.job_id }), el("td", { text: job.name || "-" }),
      el("td", {}, badge(job.status)), el("td", { text: job.cluster || "-" }),
      el("td", { class: "num", text: job.recovery_count ?? 0 }), el("td", {}, line));
  }));
}

// --- refresh loop ----------------------------------------------------------------------
let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    state.clusters = await request("/api/clusters");
    if (state.selected && !state.clusters.some((c) => c.name === state.selected)) state.selected = null;
    if (!state.selected && state.clusters.length) state.selected = state.clusters[0].name;
    renderClusters();
    await refreshJobs();
    drawCost(await request("/api/cost"));
    if (state.features.managed_jobs) drawManaged(await request("/api/managed-jobs"));
    document.getElementById("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("refreshed").textContent = `update failed: ${error.message}`;
  } finally {
    busy = false;
  }
}

async function start() {
  state.features = await request("/api/features").catch(() => ({}));
  if (!state.features.managed_jobs) {
    document.getElementById("managed-note").textContent =
      "This skyterra has no managed jobs yet; they appear here, with their recovery timeline, " +
      "once its SDK has them.";
  }
  await refresh();
  setInterval(refresh, 4000);
}

start();
