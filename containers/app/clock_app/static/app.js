// The clock gate page: polls /api/clock and /api/history, draws the bound on a canvas.
// No libraries, no CDN: everything here is served by the app itself.
"use strict";

const CLOCK_EVERY_MS = 1000;
const HISTORY_EVERY_MS = 1000;
const EMULATOR_EVERY_MS = 3000;
// The chart spans the samples it has, from 20 s up to 3 minutes, so a fresh page
// fills its width instead of drawing a sliver at the right edge.
const CHART_MIN_WINDOW_S = 20;
const CHART_MAX_WINDOW_S = 180;

const $ = (id) => document.getElementById(id);
const state = { clock: null, history: [], thresholdMs: null, local: false };

function fmtMs(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(3);
}

// "2026-11-28T05:40:12.123456Z" -> "05:40:12.123456" (keeps microseconds, which Date drops).
// Axis labels: as few digits as the value needs ("2.5 ms", "0.25 ms").
function fmtAxis(value) {
  return String(Number(value.toPrecision(3))) + " ms";
}

function timeOf(iso) {
  if (!iso) return "–";
  const match = /T(\d\d:\d\d:\d\d(?:\.\d+)?)/.exec(iso);
  return match ? match[1] : iso;
}

function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  if (seconds < 3600) return (seconds / 60).toFixed(1) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}

async function getJson(url, options) {
  const response = await fetch(url, Object.assign({ headers: { Accept: "application/json" }, cache: "no-store" }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  return { status: response.status, ok: response.ok, body, retryAfter: response.headers.get("Retry-After") };
}

function setConnection(live) {
  const pill = $("connection");
  pill.textContent = live ? "live" : "app unreachable";
  pill.className = "pill " + (live ? "live" : "down");
}

function renderClock(clock) {
  state.clock = clock;
  state.thresholdMs = clock.threshold_ms;
  const verdict = $("verdict");
  verdict.dataset.verdict = clock.verdict;
  verdict.className = "verdict " + (clock.safe ? "safe" : "unsafe");
  $("verdict-label").textContent = clock.verdict;
  $("verdict-sub").textContent = clock.safe ? "critical operations run" : "critical operations are refused";

  const reasons = $("reasons");
  reasons.replaceChildren();
  if (clock.safe) {
    const item = document.createElement("li");
    item.innerHTML = '<span class="reason-code ok">ok</span>';
    item.append(" synchronized, bound within the threshold, reference fresh");
    reasons.append(item);
  } else {
    clock.reasons.forEach((reason, index) => {
      const item = document.createElement("li");
      const code = document.createElement("span");
      code.className = "reason-code";
      code.textContent = reason;
      item.append(code, " " + (clock.details[index] || ""));
      reasons.append(item);
    });
  }
  renderSource(clock);
  $("checked-at").textContent = clock.source.kind === "clockbound"
    ? "checked " + timeOf(clock.checked_at) + " UTC · read from shared memory at each check"
    : "checked " + timeOf(clock.checked_at) + " UTC · cached sample " + clock.cache_age_s.toFixed(2) + " s old (TTL " + clock.cache_ttl_s + " s)";

  const reading = clock.reading;
  $("threshold").textContent = String(clock.threshold_ms);
  $("age-limit").textContent = clock.max_reference_age_s;
  if (reading) {
    const task = reading.task;
    if (task) {
      $("task").textContent = "task " + task.task_id.slice(0, 12) + " · " + task.cluster_name + " / " + task.family +
        (task.revision ? ":" + task.revision : "") + (task.availability_zone ? " · " + task.availability_zone : "");
    } else {
      $("task").textContent = "the ClockBound segment carries no task identity";
    }
    $("bound").textContent = fmtMs(reading.effective_bound_ms);
    $("reported").textContent = fmtMs(reading.bound_ms);
    // The threshold mark sits at 2/3 of the meter.
    const share = Math.min(1, reading.effective_bound_ms / (clock.threshold_ms * 1.5));
    const meter = $("bound-meter");
    meter.style.width = (share * 100).toFixed(1) + "%";
    meter.className = "meter-fill" + (reading.effective_bound_ms > clock.threshold_ms ? " over" : "");
    const sync = $("sync");
    sync.textContent = reading.status.replace("_", " ");
    sync.className = "value status " + (reading.status === "SYNCHRONIZED" ? "ok" : "bad");
    $("drift").textContent = reading.max_drift_ppm;
    $("reference").textContent = reading.reference_time ? timeOf(reading.reference_time) + " UTC" : "not reported";
    $("reference-age").textContent = fmtAge(reading.reference_age_s);
  } else {
    $("bound").textContent = "–";
    $("reported").textContent = "–";
    $("bound-meter").style.width = "0";
    const sync = $("sync");
    sync.textContent = "no reading";
    sync.className = "value status bad";
    $("reference").textContent = "–";
    $("reference-age").textContent = "–";
  }
  if (clock.bounded_now) {
    $("earliest").textContent = timeOf(clock.bounded_now.earliest);
    $("latest").textContent = timeOf(clock.bounded_now.latest);
  } else {
    $("earliest").textContent = "–";
    $("latest").textContent = "–";
  }
}

// Which source answered: the ClockBound segment (with its path) or the metadata endpoint.
function renderSource(clock) {
  const source = clock.source;
  const pill = $("source-pill");
  pill.dataset.source = source.kind;
  pill.textContent = source.kind === "clockbound" ? "ClockBound segment" : "metadata endpoint";
  const line = $("source");
  const kind = document.createElement("span");
  kind.className = "source-kind";
  let rest = "";
  if (source.kind === "clockbound") {
    kind.textContent = "ClockBound segment " + source.segment_path;
    const segment = clock.segment;
    if (segment) {
      rest = " · generation " + segment.generation + " · stored status " + segment.stored_status +
        (segment.void ? " · void for " + fmtAge(-segment.void_after_in_s) : " · void-after in " + fmtAge(segment.void_after_in_s));
    }
  } else {
    kind.textContent = "task metadata endpoint";
    if (source.note) rest = " · " + source.note;
  }
  line.replaceChildren("answered by ", kind, rest);
}

async function refreshClock() {
  try {
    const clock = await getJson("/api/clock");
    if (clock.status === 200 && clock.body) { renderClock(clock.body); drawChart(); }
    const stats = await getJson("/api/operations/stats");
    if (stats.ok && stats.body) {
      $("allowed").textContent = stats.body.allowed;
      $("refused").textContent = stats.body.refused;
    }
    setConnection(clock.status === 200);
  } catch (error) {
    setConnection(false);
  }
}

async function refreshHistory() {
  try {
    const history = await getJson("/api/history");
    if (history.ok && history.body) {
      state.history = history.body.readings;
      state.thresholdMs = history.body.threshold_ms;
      drawChart();
    }
  } catch (error) {
    setConnection(false);
  }
}

// ------------------------------------------------------------------ chart
function niceCeiling(value) {
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function drawChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const pad = { left: 64, right: 16, top: 14, bottom: 28 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const threshold = state.thresholdMs || 1;
  const nowS = Date.now() / 1000;
  const samples = state.history.map((entry) => ({ t: Date.parse(entry.at) / 1000, value: entry.effective_bound_ms, safe: entry.safe }));
  // The latest check carries the line up to now (the bound keeps growing between samples).
  const clock = state.clock;
  if (clock && clock.reading) {
    const checkedS = Date.parse(clock.checked_at) / 1000;
    if (!samples.length || checkedS > samples[samples.length - 1].t) {
      samples.push({ t: checkedS, value: clock.reading.effective_bound_ms, safe: clock.safe });
    }
  }
  const span = samples.length ? nowS - samples[0].t : 0;
  const windowS = Math.min(CHART_MAX_WINDOW_S, Math.max(CHART_MIN_WINDOW_S, Math.ceil(span / 10) * 10));
  const startS = nowS - windowS;
  const points = samples.filter((point) => point.t >= startS);
  const highest = points.reduce((max, point) => (point.value !== null ? Math.max(max, point.value) : max), 0);
  const top = niceCeiling(Math.max(threshold * 1.6, highest * 1.15));
  const x = (t) => pad.left + ((t - startS) / windowS) * plotW;
  const y = (value) => pad.top + plotH - (Math.min(value, top) / top) * plotH;

  // Grid and axis labels.
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#66737f";
  ctx.strokeStyle = "#e3e8ed";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const value = (top / 4) * i;
    const gy = Math.round(y(value)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.left, gy); ctx.lineTo(width - pad.right, gy); ctx.stroke();
    ctx.fillText(fmtAxis(value), pad.left - 8, gy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const tickS = windowS <= 30 ? 5 : windowS <= 60 ? 10 : windowS <= 120 ? 20 : 30;
  for (let ago = Math.floor(windowS / tickS) * tickS; ago >= 0; ago -= tickS) {
    ctx.fillText(ago === 0 ? "now" : "−" + ago + " s", x(nowS - ago), height - pad.bottom + 8);
  }

  // Samples without a reading: grey bands, so an outage is visible, not a silent gap.
  ctx.fillStyle = "rgba(135, 149, 161, 0.28)";
  points.forEach((point) => {
    if (point.value === null) ctx.fillRect(x(point.t) - 2, pad.top, 4, plotH);
  });

  // The bound: filled area and line, broken where there was no reading.
  const segments = [];
  let current = [];
  points.forEach((point) => {
    if (point.value === null) { if (current.length) segments.push(current); current = []; }
    else current.push(point);
  });
  if (current.length) segments.push(current);
  segments.forEach((segment) => {
    // Steps, not slopes: a sample's bound holds until the next sample replaces it.
    const trace = new Path2D();
    segment.forEach((point, index) => {
      if (index === 0) trace.moveTo(x(point.t), y(point.value));
      else { trace.lineTo(x(point.t), y(segment[index - 1].value)); trace.lineTo(x(point.t), y(point.value)); }
    });
    const area = new Path2D(trace);
    area.lineTo(x(segment[segment.length - 1].t), y(0));
    area.lineTo(x(segment[0].t), y(0));
    area.closePath();
    ctx.fillStyle = "rgba(37, 99, 235, 0.10)";
    ctx.fill(area);
    ctx.strokeStyle = "#2563eb";
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.stroke(trace);
  });
  // Unsafe samples get a red dot.
  points.forEach((point) => {
    if (point.value !== null && !point.safe) {
      ctx.beginPath(); ctx.arc(x(point.t), y(point.value), 2.6, 0, Math.PI * 2);
      ctx.fillStyle = "#c62f2f"; ctx.fill();
    }
  });

  // Threshold line on top, labelled.
  const ty = Math.round(y(threshold)) + 0.5;
  ctx.setLineDash([6, 4]);
  ctx.strokeStyle = "#c62f2f";
  ctx.lineWidth = 1.5;
  ctx.beginPath(); ctx.moveTo(pad.left, ty); ctx.lineTo(width - pad.right, ty); ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = "#c62f2f";
  ctx.textAlign = "left";
  ctx.textBaseline = "bottom";
  ctx.fillText("threshold " + fmtAxis(threshold), pad.left + 6, ty - 3);

  if (!points.length) {
    ctx.fillStyle = "#66737f";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.font = "13px system-ui, sans-serif";
    ctx.fillText("no samples yet", pad.left + plotW / 2, pad.top + plotH / 2);
  }
}

// ------------------------------------------------------------------ actions
function showResult(element, ok, text) {
  element.className = "result " + (ok ? "ok" : "bad");
  element.textContent = text;
}

async function runAction(button, url, describe) {
  const result = $("op-result");
  button.disabled = true;
  try {
    const answer = await getJson(url, { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify({ label: "page-button" }) });
    if (answer.ok) showResult(result, true, describe(answer.body));
    else if (answer.status === 503 && answer.body) showResult(result, false, "Refused (503): " + answer.body.reasons.join(", ") + " · retry after " + answer.retryAfter + " s");
    else showResult(result, false, "Failed: HTTP " + answer.status + (answer.body && answer.body.message ? " · " + answer.body.message : ""));
  } catch (error) {
    showResult(result, false, "Failed: the app did not answer");
  } finally {
    button.disabled = false;
    refreshClock();
  }
}

async function loadScenarios() {
  const answer = await getJson("/api/local/emulator").catch(() => null);
  if (!answer || !answer.ok || !answer.body) return false;  // not local mode: the control stays hidden
  state.local = true;
  $("scenario-card").hidden = false;
  $("local-pill").hidden = false;
  renderScenarios(answer.body);
  return true;
}

function renderScenarios(emulator) {
  const holder = $("scenarios");
  holder.replaceChildren();
  Object.entries(emulator.scenarios).forEach(([name, description]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name.replace(/_/g, " ");
    button.title = description;
    button.dataset.scenario = name;
    if (name === emulator.scenario) button.classList.add("active");
    button.addEventListener("click", () => switchScenario(name));
    holder.append(button);
  });
}

async function switchScenario(name) {
  const result = $("scenario-result");
  try {
    const answer = await getJson("/api/local/scenario", { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify({ scenario: name }) });
    if (answer.ok) {
      renderScenarios(answer.body);
      showResult(result, true, "Emulator now answers: " + answer.body.scenarios[name]);
    } else {
      showResult(result, false, (answer.body && answer.body.message) || "HTTP " + answer.status);
    }
  } catch (error) {
    showResult(result, false, "Failed: the app did not answer");
  }
  refreshClock();
  refreshHistory();
}

document.addEventListener("DOMContentLoaded", () => {
  $("run-op").addEventListener("click", (event) =>
    runAction(event.currentTarget, "/api/operations", (body) => "Ran " + body.operation_id.slice(0, 8) + ", stamped " + timeOf(body.timestamp) + " UTC (±" + fmtMs(body.stamped.bound_ms) + " ms)"));
  $("run-commit").addEventListener("click", (event) =>
    runAction(event.currentTarget, "/api/commit", (body) => "Committed at " + timeOf(body.timestamp) + " UTC after waiting " + body.waited_ms.toFixed(3) + " ms (bound " + fmtMs(body.bound_ms) + " ms)"));
  window.addEventListener("resize", drawChart);
  // In local mode, follow scenario changes made elsewhere (another tab, the emulator's API).
  loadScenarios().then((local) => { if (local) setInterval(loadScenarios, EMULATOR_EVERY_MS); });
  refreshClock();
  refreshHistory();
  setInterval(refreshClock, CLOCK_EVERY_MS);
  setInterval(refreshHistory, HISTORY_EVERY_MS);
});
