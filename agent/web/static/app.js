// The commissioning page: plain JavaScript, no build step, no CDN.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};

let session = null;
let tab = "live";
let timers = [];

async function api(method, url, body) {
  const opts = { method, headers: { "X-CSRF-Token": session ? session.csrf : "" }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const response = await fetch(url, opts);
  if (response.status === 401) {
    window.location = "/login";
    throw new Error("not logged in");
  }
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

const camera = () => $("#camera").value;

// ----- tabs -----------------------------------------------------------------------------------------
function show(name) {
  tab = name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll("main section")) s.classList.toggle("active", s.id === name);
  timers.forEach(clearInterval);
  timers = [];
  // the stream runs only while its tab is open: with no viewer the camera encodes nothing
  $("#live-img").src = name === "live" && camera() ? `/api/cameras/${camera()}/live.mjpeg` : "";
  if (name === "zones") loadZones();
  if (name === "boards") { loadBoards(); timers.push(setInterval(loadBoards, 2000)); }
  if (name === "events") { loadEvents(); timers.push(setInterval(loadEvents, 2000)); }
  if (name === "health") { loadHealth(); timers.push(setInterval(loadHealth, 2000)); }
}

// ----- zone editor ----------------------------------------------------------------------------------
// zones are polygons; counting lines are two points, "in" crossing to the right of first -> second;
// masks are polygons too, drawn like zones ("drawing" with drawingMask set): where nothing is believed
const editor = {
  zones: [], selected: -1, drawing: null, drag: null, objects: [], lines: [], line: -1, drawingLine: null,
  masks: [], mask: -1, drawingMask: false,
};
const HIT_PX = 9;

function canvasSize() {
  const img = $("#zone-frame");
  const canvas = $("#zone-canvas");
  canvas.width = img.clientWidth;
  canvas.height = img.clientHeight;
  draw();
}

function toNorm(event) {
  const r = $("#zone-canvas").getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)];
}

function draw() {
  const canvas = $("#zone-canvas");
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  const poly = (pts, colour, closed, fill) => {
    if (!pts.length) return;
    g.beginPath();
    pts.forEach(([x, y], i) => (i ? g.lineTo(x * w, y * h) : g.moveTo(x * w, y * h)));
    if (closed) g.closePath();
    if (fill) { g.fillStyle = fill; g.fill(); }
    g.strokeStyle = colour; g.lineWidth = 2; g.stroke();
    g.fillStyle = colour;
    for (const [x, y] of pts) g.fillRect(x * w - 4, y * h - 4, 8, 8);
  };
  // masks under the zones, darkened as the live view draws them (agent/vision/draw.py)
  editor.masks.forEach((m, i) => {
    const sel = i === editor.mask;
    poly(m.polygon, sel ? "#ff6a00" : "#5a5a5a", true, sel ? "rgba(40,40,40,.55)" : "rgba(40,40,40,.45)");
    const [x, y] = m.polygon[0] || [0, 0];
    g.fillStyle = "#fff"; g.font = "13px sans-serif";
    g.fillText(`mask ${m.id}`, x * w + 6, y * h + 16);
  });
  editor.zones.forEach((z, i) => {
    const sel = i === editor.selected;
    poly(z.polygon, sel ? "#ff6a00" : "#00c8ff", true, sel ? "rgba(255,106,0,.18)" : "rgba(0,200,255,.12)");
    const [x, y] = z.polygon[0] || [0, 0];
    g.fillStyle = "#000"; g.font = "13px sans-serif";
    g.fillText(z.id, x * w + 6, y * h + 16);
  });
  if (editor.drawing) poly(editor.drawing, "#ffe000", false);
  editor.lines.forEach((ln, i) => {
    const colour = i === editor.line ? "#ff6a00" : "#3cdc3c";
    poly(ln.points, colour, false);
    const [[x1, y1], [x2, y2]] = ln.points.map(([x, y]) => [x * w, y * h]);
    const len = Math.max(1, Math.hypot(x2 - x1, y2 - y1)), mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
    const tx = mx - ((y2 - y1) / len) * 22, ty = my + ((x2 - x1) / len) * 22;  // to the "in" side
    g.beginPath(); g.moveTo(mx, my); g.lineTo(tx, ty); g.strokeStyle = colour; g.lineWidth = 2; g.stroke();
    g.beginPath(); g.arc(tx, ty, 4, 0, 2 * Math.PI); g.fillStyle = colour; g.fill();
    g.fillStyle = "#000"; g.font = "13px sans-serif";
    g.fillText(`${ln.id} (in →)`, Math.min(x1, x2) + 6, Math.min(y1, y2) - 6);
  });
  if (editor.drawingLine) poly(editor.drawingLine, "#ffe000", false);
  g.setLineDash([4, 3]);
  g.strokeStyle = "#ffffff"; g.lineWidth = 1;
  for (const o of editor.objects || []) {
    const [x1, y1, x2, y2] = o.box;
    g.strokeRect(x1 * w, y1 * h, (x2 - x1) * w, (y2 - y1) * h);
  }
  g.setLineDash([]);
}

// What a zone would catch in the shown frame: objects whose ground point (bottom centre) is inside,
// of the zone's classes (all when none), as the agent's rules decide (agent/vision/zones.py).
function caught(zone) {
  const classes = zone.classes || [];
  return editor.objects.filter((o) =>
    (!classes.length || classes.includes(o.label)) && inside([(o.box[0] + o.box[2]) / 2, o.box[3]], zone.polygon));
}

async function loadObjects() {
  try {
    editor.objects = (await api("GET", `/api/cameras/${camera()}/detections`)).objects;
  } catch (err) {
    editor.objects = [];
  }
  listZones();
  draw();
}

function inside([px, py], pts) {
  // on the border counts as inside, as in the agent (cv2.pointPolygonTest >= 0): a box cut by the
  // frame's bottom edge stands on the border of a zone that reaches it
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i], [xj, yj] = pts[j];
    const cross = (xj - xi) * (py - yi) - (yj - yi) * (px - xi);
    const within = Math.min(xi, xj) - 1e-9 <= px && px <= Math.max(xi, xj) + 1e-9 &&
      Math.min(yi, yj) - 1e-9 <= py && py <= Math.max(yi, yj) + 1e-9;
    if (within && Math.abs(cross) < 1e-9) return true;
  }
  let hit = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i], [xj, yj] = pts[j];
    if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

// distance in canvas pixels from p to the segment a-b (all normalized)
function pxToSegment(p, [a, b]) {
  const c = $("#zone-canvas");
  const [px, py, ax, ay, bx, by] = [p[0] * c.width, p[1] * c.height, a[0] * c.width, a[1] * c.height, b[0] * c.width, b[1] * c.height];
  const len2 = (bx - ax) ** 2 + (by - ay) ** 2;
  const t = len2 ? Math.min(1, Math.max(0, ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2)) : 0;
  return Math.hypot(px - (ax + t * (bx - ax)), py - (ay + t * (by - ay)));
}

function onDown(event) {
  const p = toNorm(event);
  if (editor.drawing) {
    editor.drawing.push(p);
    $("#finish-zone").disabled = false;
    draw();
    return;
  }
  if (editor.drawingLine) {
    editor.drawingLine.push(p);
    if (editor.drawingLine.length === 2) finishLine();
    else draw();
    return;
  }
  const c = $("#zone-canvas");
  for (let li = editor.lines.length - 1; li >= 0; li--) {
    const vi = editor.lines[li].points.findIndex(
      ([x, y]) => Math.hypot((x - p[0]) * c.width, (y - p[1]) * c.height) < HIT_PX);
    if (vi >= 0) { selectLine(li); editor.drag = { shape: editor.lines[li], key: "points", vi }; return; }
  }
  for (let li = editor.lines.length - 1; li >= 0; li--) {
    if (pxToSegment(p, editor.lines[li].points) < HIT_PX) {
      selectLine(li);
      editor.drag = { shape: editor.lines[li], key: "points", from: p, start: editor.lines[li].points.map((q) => q.slice()) };
      return;
    }
  }
  // zones before masks, as they are drawn over them; a corner before an inside
  const polygons = [[editor.zones, select], [editor.masks, selectMask]];
  for (const [shapes, pick] of polygons) {
    for (let i = shapes.length - 1; i >= 0; i--) {
      const vi = shapes[i].polygon.findIndex(
        ([x, y]) => Math.hypot((x - p[0]) * c.width, (y - p[1]) * c.height) < HIT_PX);
      if (vi >= 0) { pick(i); editor.drag = { shape: shapes[i], key: "polygon", vi }; return; }
    }
  }
  for (const [shapes, pick] of polygons) {
    for (let i = shapes.length - 1; i >= 0; i--) {
      if (inside(p, shapes[i].polygon)) {
        pick(i);
        editor.drag = { shape: shapes[i], key: "polygon", from: p, start: shapes[i].polygon.map((q) => q.slice()) };
        return;
      }
    }
  }
  select(-1);
  selectMask(-1);
}

function onMove(event) {
  const d = editor.drag;
  if (!d) return;
  const p = toNorm(event);
  const { shape, key } = d;
  if (d.vi !== undefined) shape[key][d.vi] = p;
  else {
    const dx = p[0] - d.from[0], dy = p[1] - d.from[1];
    shape[key] = d.start.map(([x, y]) => [Math.min(1, Math.max(0, x + dx)), Math.min(1, Math.max(0, y + dy))]);
  }
  draw();
}

function round4(pts) { return pts.map(([x, y]) => [Math.round(x * 1e4) / 1e4, Math.round(y * 1e4) / 1e4]); }

// one shape is selected at a time: a zone, a counting line or a mask (-1: none of that kind)
function select(i) {
  editor.selected = i;
  if (i >= 0) { editor.line = -1; editor.mask = -1; }
  showSelection();
}

function selectLine(i) {
  editor.line = i;
  if (i >= 0) { editor.selected = -1; editor.mask = -1; }
  showSelection();
}

function selectMask(i) {
  editor.mask = i;
  if (i >= 0) { editor.selected = -1; editor.line = -1; }
  showSelection();
}

function showSelection() {
  fillFields("#zone-fields", editor.zones[editor.selected]);
  fillFields("#line-fields", editor.lines[editor.line]);
  fillFields("#mask-fields", editor.masks[editor.mask]);
  $("#delete-zone").disabled = editor.selected < 0 && editor.line < 0 && editor.mask < 0;
  listZones();
  draw();
}

function fillFields(fieldset, shape) {
  $(fieldset).disabled = !shape;
  for (const input of document.querySelectorAll(`${fieldset} input`)) {
    // data-rule fields edit the zone's first count rule (a pile-up); any further ones are kept
    const from = input.dataset.rule ? (shape && shape.count_rules && shape.count_rules[0]) : shape;
    const v = from ? from[input.dataset.rule || input.dataset.key] : undefined;
    input.value = v === undefined || v === null ? "" : Array.isArray(v) ? v.join(", ") : String(v);
  }
}

function listZones() {
  const list = $("#zone-list");
  list.replaceChildren(...editor.zones.map((z, i) => {
    let item;
    if (editor.objects === null) {  // the frame's detections are not here yet
      item = el("li", { "data-zone": z.id }, `${z.id} (${z.polygon.length} corners)`);
    } else {
      const now = caught(z);
      const labels = {};
      for (const o of now) labels[o.label] = (labels[o.label] || 0) + 1;
      const detail = Object.entries(labels).map(([k, n]) => `${k} ${n}`).join(", ");
      item = el("li", { "data-zone": z.id, "data-caught": String(now.length) },
        `${z.id} (${z.polygon.length} corners): catches ${now.length} in this frame${detail ? " (" + detail + ")" : ""}`);
    }
    if (i === editor.selected) item.style.fontWeight = "bold";
    item.onclick = () => select(i);
    return item;
  }));
  $("#line-list").replaceChildren(...editor.lines.map((ln, i) => {
    const item = el("li", { "data-line": ln.id }, `${ln.id}: counting line${ln.classes && ln.classes.length ? " of " + ln.classes.join(", ") : ""}`);
    if (i === editor.line) item.style.fontWeight = "bold";
    item.onclick = () => selectLine(i);
    return item;
  }));
  $("#mask-list").replaceChildren(...editor.masks.map((m, i) => {
    const item = el("li", { "data-mask": m.id }, `${m.id}: mask of ${m.classes && m.classes.length ? m.classes.join(", ") : "all classes"}`);
    if (i === editor.mask) item.style.fontWeight = "bold";
    item.onclick = () => selectMask(i);
    return item;
  }));
}

function onField(event) {
  const zone = event.target.closest("#line-fields") ? editor.lines[editor.line]
    : event.target.closest("#mask-fields") ? editor.masks[editor.mask] : editor.zones[editor.selected];
  if (!zone) return;
  const input = event.target, key = input.dataset.key, raw = input.value.trim();
  if (input.dataset.rule) {
    onRuleField(zone, input.dataset.rule, raw);
    return;
  }
  if (key === "classes") zone.classes = raw ? raw.split(",").map((s) => s.trim()).filter(Boolean) : [];
  else if (raw === "") delete zone[key];
  else if (input.hasAttribute("data-number")) zone[key] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
  else zone[key] = raw;
  listZones();
  draw();
}

function onRuleField(zone, key, raw) {
  const rules = zone.count_rules || (zone.count_rules = []);
  const rule = rules[0] || (rules[0] = {});
  if (raw === "") delete rule[key];
  else if (key === "label") rule[key] = raw;
  else rule[key] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
  if (!Object.keys(rule).length) rules.shift();  // all three emptied: no pile-up rule
  if (!rules.length) delete zone.count_rules;
}

function message(text, ok) {
  const m = $("#zone-message");
  m.textContent = text;
  m.className = "message " + (ok ? "ok" : "error");
}

async function loadZones() {
  editor.drawing = null;
  editor.objects = null;
  $("#finish-zone").disabled = true;
  $("#finish-zone").textContent = "Finish zone";
  editor.drawingLine = null;
  const data = await api("GET", `/api/cameras/${camera()}/zones`);
  editor.zones = data.zones;
  editor.lines = data.lines || [];
  editor.masks = data.masks || [];
  editor.line = -1;
  editor.mask = -1;
  select(-1);
  $("#zone-frame").src = `/api/cameras/${camera()}/frame.jpg?t=${Date.now()}`;
}

async function saveZones() {
  const zones = editor.zones.map((z) => ({ ...z, polygon: round4(z.polygon) }));
  const lines = editor.lines.map((ln) => ({ ...ln, points: round4(ln.points) }));
  const masks = editor.masks.map((m) => ({ ...m, polygon: round4(m.polygon) }));
  message("saving ...", true);
  try {
    const reply = await api("PUT", `/api/cameras/${camera()}/zones`, { zones, lines, masks });
    editor.zones = reply.zones;
    editor.lines = reply.lines;
    editor.masks = reply.masks;
    editor.line = -1;
    editor.mask = -1;
    select(-1);
    const names = (items) => items.map((z) => z.id).join(", ") || "none";
    message(`Saved to ${reply.saved}; camera ${camera()} runs with zones: ${names(reply.zones)}; masks: ${names(reply.masks)}; counting lines: ${names(reply.lines)}.`, true);
  } catch (err) {
    message(err.message, false);
  }
}

function newZone(mask = false) {
  editor.drawing = [];
  editor.drawingMask = mask;
  editor.drawingLine = null;
  $("#finish-zone").textContent = mask ? "Finish mask" : "Finish zone";
  selectLine(-1);
  selectMask(-1);
  select(-1);
  message(mask ? "Click the mask's corners around what the models misread, then Finish mask."
    : "Click the zone's corners on the frame, then Finish zone.", true);
}

function finishZone() {
  if (!editor.drawing) return;
  const [shapes, prefix] = editor.drawingMask ? [editor.masks, "mask"] : [editor.zones, "zone"];
  const taken = new Set(shapes.map((z) => z.id));
  let n = shapes.length + 1;
  while (taken.has(`${prefix}-${n}`)) n++;
  shapes.push({ id: `${prefix}-${n}`, polygon: editor.drawing });
  editor.drawing = null;
  $("#finish-zone").disabled = true;
  $("#finish-zone").textContent = "Finish zone";
  if (editor.drawingMask) {
    selectMask(shapes.length - 1);
    message("Name the mask and choose the classes it hides (empty: all), then Save zones.", true);
  } else {
    select(shapes.length - 1);
    message("Name the zone and set its rules, then Save zones.", true);
  }
}

function deleteZone() {
  if (editor.line >= 0) {
    editor.lines.splice(editor.line, 1);
    selectLine(-1);
    return;
  }
  if (editor.mask >= 0) {
    editor.masks.splice(editor.mask, 1);
    selectMask(-1);
    return;
  }
  if (editor.selected < 0) return;
  editor.zones.splice(editor.selected, 1);
  select(-1);
}

function newLine() {
  editor.drawingLine = [];
  editor.drawing = null;
  $("#finish-zone").disabled = true;
  $("#finish-zone").textContent = "Finish zone";
  selectMask(-1);
  selectLine(-1);
  select(-1);
  message("Click the line's two ends on the frame: crossing it to the right of first -> second counts as in.", true);
}

function finishLine() {
  const taken = new Set([...editor.zones, ...editor.lines].map((z) => z.id));
  let n = editor.lines.length + 1;
  while (taken.has(`line-${n}`)) n++;
  editor.lines.push({ id: `line-${n}`, points: editor.drawingLine });
  editor.drawingLine = null;
  selectLine(editor.lines.length - 1);
  message("Name the line and choose its classes, then Save zones.", true);
}

// ----- boards ---------------------------------------------------------------------------------------
const fmtValues = (values, units) =>
  Object.entries(values || {}).map(([k, v]) => `${k} ${Math.round(v * 100) / 100}${units && units[k] ? " " + units[k] : ""}`).join(", ");

const boardCards = {};

function boardCard(board) {
  // made once per board: refreshing only its figures keeps what a technician types in the lamp field
  const level = el("input", { id: `lamp-level-${board}`, type: "number", min: "0", max: "1", step: "0.05", value: "0.5" });
  const button = el("button", { id: `lamp-set-${board}` }, "Set lamp");
  const result = el("span", { id: `lamp-result-${board}`, class: "message" });
  button.onclick = async () => {
    try {
      const reply = await api("POST", `/api/boards/${board}/lamp`, { level: Number(level.value) });
      result.textContent = `lamp at ${level.value}: ${JSON.stringify(reply.result)}`;
      result.className = "message ok";
    } catch (err) {
      result.textContent = err.message;
      result.className = "message error";
    }
  };
  const card = el("div", { class: "card board", "data-board": board },
    el("h2", {}, board), el("h3", {}, "Readings"), el("div", { class: "readings" }),
    el("h3", {}, "Open alarms"), el("div", { class: "alarms" }),
    el("h3", {}, "Lamp"), el("p", {}, "level 0..1 ", level, " ", button, " ", result),
    el("h3", {}, "Link"), el("pre", { class: "link" }));
  $("#boards-list").append(card);
  return card;
}

async function loadBoards() {
  const data = await api("GET", "/api/boards");
  for (const b of data.boards) {
    const card = boardCards[b.board] || (boardCards[b.board] = boardCard(b.board));
    card.querySelector(".readings").replaceChildren(el("table", {},
      el("tr", {}, el("th", {}, "sensor"), el("th", {}, "values"), el("th", {}, "age")),
      ...b.readings.map((r) => el("tr", { class: "reading", "data-sensor": r.sensor },
        el("td", {}, r.sensor), el("td", {}, fmtValues(r.values, r.units)), el("td", {}, `${r.age_s} s`)))));
    card.querySelector(".alarms").replaceChildren(b.alarms.length
      ? el("ul", {}, ...b.alarms.map((a) => el("li", { class: "alarm" }, `${a.severity}: ${a.label} on ${a.sensor} (${fmtValues(a.values, a.units)}), for ${a.age_s} s`)))
      : el("p", { class: "muted" }, "no open alarms"));
    card.querySelector(".link").textContent = JSON.stringify(b.link, null, 1);
  }
}

// ----- events ---------------------------------------------------------------------------------------
async function loadEvents() {
  const kind = $("#event-kind").value;
  const data = await api("GET", `/api/events?limit=100${kind ? "&kind=" + encodeURIComponent(kind) : ""}`);
  $("#events-table").replaceChildren(...data.events.map((e) =>
    el("tr", { class: `event kind-${e.k}` }, el("td", {}, String(e.s)), el("td", {}, e.k),
      el("td", {}, new Date(e.t).toISOString().replace("T", " ").slice(0, 19)),
      el("td", {}, el("pre", {}, JSON.stringify(e))))));
}

// ----- health ---------------------------------------------------------------------------------------
function plot(title, points, unit) {
  const W = 320, H = 100, pad = 4;
  const vals = points.filter((p) => p[1] !== null && p[1] !== undefined);
  const box = el("div", { class: "card plot" });
  const last = vals.length ? vals[vals.length - 1][1] : null;
  box.append(el("div", {}, `${title}: `, el("b", {}, last === null ? "–" : `${last}${unit}`)));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  if (vals.length > 1) {
    const t0 = vals[0][0], t1 = vals[vals.length - 1][0];
    const hi = Math.max(...vals.map((p) => p[1]), 1e-9);
    const lo = Math.min(...vals.map((p) => p[1]), 0);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", vals.map(([t, v]) =>
      `${pad + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * pad)},${H - pad - ((v - lo) / (hi - lo)) * (H - 2 * pad)}`).join(" "));
    svg.append(line);
    const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
    label.setAttribute("x", "6"); label.setAttribute("y", "14"); label.setAttribute("font-size", "11");
    label.textContent = `max ${Math.round(hi * 100) / 100}${unit}`;
    svg.append(label);
  }
  box.append(svg);
  return box;
}

async function loadHealth() {
  const { samples } = await api("GET", "/api/health");
  const last = samples[samples.length - 1];
  $("#health-now").textContent = last
    ? `uplink ${last.uplink_connected ? "connected" : "disconnected" + (last.uplink_last_error ? ": " + last.uplink_last_error : "")}; ` +
      `outbox ${last.outbox_depth} waiting, oldest ${last.outbox_oldest_s ?? "–"} s`
    : "no samples yet";
  const plots = [];
  const cams = new Set(samples.flatMap((s) => Object.keys(s.cameras)));
  for (const cam of cams) {
    plots.push(plot(`${cam} frames/s`, samples.map((s) => [s.t, s.cameras[cam] && s.cameras[cam].fps]), ""));
    plots.push(plot(`${cam} inference ms`, samples.map((s) => [s.t, s.cameras[cam] && s.cameras[cam].infer_ms]), " ms"));
  }
  plots.push(plot("outbox depth", samples.map((s) => [s.t, s.outbox_depth]), ""));
  plots.push(plot("oldest event waiting", samples.map((s) => [s.t, s.outbox_oldest_s]), " s"));
  plots.push(plot("uplink connected", samples.map((s) => [s.t, s.uplink_connected ? 1 : 0]), ""));
  $("#plots").replaceChildren(...plots);
}

// ----- start ----------------------------------------------------------------------------------------
async function start() {
  session = await api("GET", "/api/session");
  $("#device").textContent = `Gateway ${session.device}`;
  $("#camera").replaceChildren(...session.cameras.map((c) => el("option", { value: c }, c)));
  if (session.unblurred) $("#live-note").textContent = "UNBLURRED: web.unblurred is set in the gateway's config.";
  for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => show(b.dataset.tab);
  $("#camera").onchange = () => show(tab);
  $("#zone-frame").onload = () => { canvasSize(); loadObjects(); };
  window.addEventListener("resize", canvasSize);
  const canvas = $("#zone-canvas");
  canvas.addEventListener("mousedown", onDown);
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", () => { editor.drag = null; });
  for (const input of document.querySelectorAll("#zone-fields input, #line-fields input, #mask-fields input")) input.addEventListener("input", onField);
  $("#new-zone").onclick = () => newZone();
  $("#new-mask").onclick = () => newZone(true);
  $("#new-line").onclick = newLine;
  $("#finish-zone").onclick = finishZone;
  $("#delete-zone").onclick = deleteZone;
  $("#reload-frame").onclick = () => { editor.objects = null; $("#zone-frame").src = `/api/cameras/${camera()}/frame.jpg?t=${Date.now()}`; };
  $("#save-zones").onclick = saveZones;
  $("#event-kind").onchange = loadEvents;
  $("#logout").onclick = async () => {
    await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": session.csrf } });
    window.location = "/login";
  };
  show("live");
}

start();
