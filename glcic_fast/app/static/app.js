// glcic-fast app: open a photo, brush the hole, see it completed. No build step, no libraries.
//
// The photo goes to the server once (POST api/photos); each completion sends only the mask
// (a binary PNG of the brushed box, and where the box lies) and gets back the region that changed.
// Authors' mode returns the script's network resolution, which can differ from the photo's
// size: then the whole result comes back and is shown at its own size (in the photo's place on
// screen: the script scales image and mask alike, so the strokes still lie over the hole). Every
// request carries a sequence number: a newer stroke aborts the request in flight, the server
// drops queued requests that a newer one has overtaken, and late answers are ignored here.
//
// One file of ~450 lines on purpose: the page is served as is, with no bundler, and its parts
// (status, drawing, completion, opening photos, start) share one small state object.
"use strict";

const $ = (id) => document.getElementById(id);
const view = $("view"), overlay = $("overlay"), cursor = $("cursor"), stage = $("stage");
const STROKE_COLOUR = "#ff3b30";

const state = {
  info: null,
  photo: null,      // {id, name, width, height, file}
  base: null,       // canvas: the photo the hole is cut from ("before")
  result: null,     // canvas: base with the completed region drawn in (or the whole result when its size differs), or null
  resultSeq: -1,
  strokes: [],      // {width, points: [[x, y], ...]} in photo pixels
  drawing: null,    // the stroke under the pointer
  seq: 0,           // number of the newest completion request
  inflight: null,   // AbortController of the request in flight
  before: false,    // showing the photo before completion
};

// ---- status, errors, stats ----------------------------------------------------------------

function setState(name, message) {
  document.body.dataset.state = name;
  if (message !== undefined) $("status").textContent = message;
  const idle = name !== "busy";
  $("undo").disabled = !state.strokes.length;
  $("clear").disabled = !state.strokes.length;
  $("complete").disabled = !state.photo || !state.strokes.length;
  $("compare").disabled = !state.result;
  $("keep").disabled = !state.result || !idle;
  $("download").setAttribute("aria-disabled", String(!state.result || !idle));
}

function settle(message) {
  setState(!state.photo ? "empty" : state.result ? "done" : "ready", message);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON: fall through */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

function showStats(s) {
  for (const [key, value] of Object.entries(s)) $("stat-" + key).textContent = value;
}

const ms = (v) => `${Number(v).toFixed(1)} ms`;

// ---- drawing --------------------------------------------------------------------------------

function paintStroke(ctx, stroke, colour) {
  ctx.fillStyle = ctx.strokeStyle = colour;
  const pts = stroke.points;
  if (pts.length === 1) {  // a click: zero-length lines are not stroked, so draw the dot
    ctx.beginPath();
    ctx.arc(pts[0][0], pts[0][1], stroke.width / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.lineWidth = stroke.width;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
}

function paintOverlay() {
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  for (const s of state.strokes) paintStroke(ctx, s, STROKE_COLOUR);
  if (state.drawing) paintStroke(ctx, state.drawing, STROKE_COLOUR);
}

function render() {
  if (!state.base) return;
  const shown = state.before || !state.result ? state.base : state.result;
  if (view.width !== shown.width || view.height !== shown.height) {  // a result at its own size; the box on screen stays
    view.width = shown.width;
    view.height = shown.height;
  }
  view.getContext("2d").drawImage(shown, 0, 0);
  const resultShown = state.result && !state.before && !state.drawing && document.body.dataset.state !== "busy";
  overlay.classList.toggle("hidden", Boolean(resultShown) && !$("show-mask").checked);
  $("compare").setAttribute("aria-pressed", String(state.before));
  $("compare").textContent = state.before ? "After" : "Before";
}

function layout() {  // fit the photo to the stage, scaling small photos up
  if (!state.photo) return;
  const r = stage.getBoundingClientRect();
  const scale = Math.min((r.width - 8) / state.photo.width, (r.height - 8) / state.photo.height, 8);
  view.style.width = `${state.photo.width * scale}px`;
  view.style.height = `${state.photo.height * scale}px`;
}

function photoPoint(event) {
  const r = overlay.getBoundingClientRect();
  return [(event.clientX - r.left) * overlay.width / r.width, (event.clientY - r.top) * overlay.height / r.height];
}

function brushScreenPx() {
  return Number($("brush").value);
}

function moveCursor(event) {
  const r = overlay.getBoundingClientRect();
  const size = brushScreenPx();
  Object.assign(cursor.style, {
    display: "block", left: `${event.clientX - r.left}px`, top: `${event.clientY - r.top}px`,
    width: `${size}px`, height: `${size}px`,
  });
}

overlay.addEventListener("pointerdown", (event) => {
  if (!state.photo || event.button !== 0) return;
  overlay.setPointerCapture(event.pointerId);
  if ($("auto").checked) cancelInflight();  // the mask is about to change: that answer is stale
  const r = overlay.getBoundingClientRect();
  state.drawing = { width: brushScreenPx() * overlay.width / r.width, points: [photoPoint(event)] };
  state.before = false;
  paintOverlay();
  render();
});

overlay.addEventListener("pointermove", (event) => {
  moveCursor(event);
  if (!state.drawing) return;
  const pts = state.drawing.points, p = photoPoint(event), last = pts[pts.length - 1];
  if (Math.hypot(p[0] - last[0], p[1] - last[1]) < 1) return;
  pts.push(p);
  const ctx = overlay.getContext("2d");
  paintStroke(ctx, { width: state.drawing.width, points: [last, p] }, STROKE_COLOUR);
});

function endStroke() {
  if (!state.drawing) return;
  state.strokes.push(state.drawing);
  state.drawing = null;
  settle();
  render();
  if ($("auto").checked) complete();
}

overlay.addEventListener("pointerup", endStroke);
overlay.addEventListener("pointercancel", endStroke);
overlay.addEventListener("pointerleave", () => { cursor.style.display = "none"; });

$("brush").addEventListener("input", () => { $("brush-size").textContent = $("brush").value; });

function undo() {
  if (!state.strokes.length) return;
  state.strokes.pop();
  strokesChanged();
}

function strokesChanged() {
  paintOverlay();
  if (!state.strokes.length) {  // nothing to fill: back to the photo
    cancelInflight();
    state.result = null;
    settle("");
    render();
  } else if ($("auto").checked) {
    complete();
  } else {
    settle();
  }
}

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", () => { state.strokes = []; strokesChanged(); });
$("show-mask").addEventListener("change", render);
$("compare").addEventListener("click", () => { state.before = !state.before; render(); });

document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); }
  else if (event.key === "b" && state.result) { state.before = !state.before; render(); }
  else if (event.key === "[" || event.key === "]") {
    const b = $("brush");
    b.value = Number(b.value) + (event.key === "]" ? 4 : -4);
    $("brush-size").textContent = b.value;
  }
});

// ---- completion -----------------------------------------------------------------------------

function cancelInflight() {
  state.seq += 1;  // any answer still on its way is now stale
  if (state.inflight) state.inflight.abort();
  state.inflight = null;
}

function strokeBounds() {  // [x, y, w, h] of the brushed area in whole photo pixels
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const s of state.strokes) {
    const r = s.width / 2 + 1;
    for (const [x, y] of s.points) {
      x0 = Math.min(x0, x - r); y0 = Math.min(y0, y - r); x1 = Math.max(x1, x + r); y1 = Math.max(y1, y + r);
    }
  }
  x0 = Math.max(0, Math.floor(x0)); y0 = Math.max(0, Math.floor(y0));
  x1 = Math.min(state.photo.width, Math.ceil(x1)); y1 = Math.min(state.photo.height, Math.ceil(y1));
  return [x0, y0, Math.max(1, x1 - x0), Math.max(1, y1 - y0)];
}

async function maskPng() {
  // The hole as a binary PNG (pixels at least half covered by the brush), cut to the brushed
  // box: on a large photo that is far less to encode and send than a photo-sized mask.
  const [x, y, w, h] = strokeBounds();
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.translate(-x, -y);
  for (const s of state.strokes) paintStroke(ctx, s, "#fff");
  const img = ctx.getImageData(0, 0, w, h), d = img.data;
  for (let i = 0; i < d.length; i += 4) {
    const v = d[i + 3] >= 128 ? 255 : 0;
    d[i] = d[i + 1] = d[i + 2] = v;
    d[i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const blob = await new Promise((resolve) => c.toBlob(resolve, "image/png"));
  return { x, y, bytes: await blob.arrayBuffer() };
}

function blankCanvas(width, height) {
  const c = document.createElement("canvas");
  c.width = width;
  c.height = height;
  return c;
}

function copyCanvas(source) {
  const c = blankCanvas(source.width, source.height);
  c.getContext("2d").drawImage(source, 0, 0);
  return c;
}

async function complete(retried = false) {
  if (!state.photo || !state.strokes.length) return;
  cancelInflight();
  const seq = state.seq, controller = new AbortController();
  state.inflight = controller;
  setState("busy", "completing…");
  render();
  const started = performance.now();
  const mask = await maskPng();
  if (seq !== state.seq) return;
  const query = new URLSearchParams({
    seq, mask_x: mask.x, mask_y: mask.y, backend: $("backend").value, postprocess: $("postprocess").checked, authors_mode: $("authors-mode").checked,
  });
  let response;
  try {
    response = await fetch(`api/photos/${state.photo.id}/complete?${query}`, {
      method: "POST", body: mask.bytes, headers: { "Content-Type": "image/png" }, signal: controller.signal,
    });
  } catch (e) {
    if (seq === state.seq) { showError(`cannot reach the server: ${e.message}`); settle(""); render(); }
    return;  // or aborted: a newer stroke took over
  }
  if (seq !== state.seq || response.status === 409) return;  // superseded
  if (response.status === 404 && !retried && await resendPhoto()) return complete(true);
  if (!response.ok) {
    const message = await errorOf(response);
    if (seq === state.seq) { showError(message); settle(""); render(); }
    return;
  }
  const [width, height] = response.headers.get("X-Glcic-Size").split(",").map(Number);
  const [x, y, w, h] = response.headers.get("X-Glcic-Region").split(",").map(Number);
  const sameSize = width === state.base.width && height === state.base.height;
  const result = sameSize ? copyCanvas(state.base) : blankCanvas(width, height);  // else the region is all of it
  if (w > 0) {
    // The PNG has no colour profile; take its bytes as they are so the page shows what the server made.
    const region = await createImageBitmap(await response.blob(), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    result.getContext("2d").drawImage(region, x, y);
  }
  if (seq !== state.seq) return;
  const total = performance.now() - started;
  state.inflight = null;
  state.result = result;
  state.resultSeq = seq;
  const h_ = (name) => response.headers.get("X-Glcic-" + name);
  showStats({
    backend: h_("Backend"), device: h_("Device"), precision: h_("Precision"),
    network: ms(h_("Network-Ms")), server: ms(h_("Server-Ms")), request: ms(total), result: `${width} × ${height}`,
  });
  const download = $("download");
  download.href = `api/photos/${state.photo.id}/result.png?seq=${seq}`;
  download.download = `${state.photo.name.replace(/\.[^.]*$/, "")}-completed.png`;
  hideError();
  document.body.dataset.seq = String(seq);
  settle(`completed in ${ms(total)}` + (sameSize ? "" : `; the result is ${width} × ${height}, the script's resolution`));
  render();
}

$("complete").addEventListener("click", () => complete());
for (const id of ["backend", "postprocess", "authors-mode"]) {
  $(id).addEventListener("change", () => { if (state.strokes.length && $("auto").checked) complete(); });
}

// Keep: the result becomes the photo, at the result's size (in authors' mode, the script's
// resolution: what running the script again on its own output would take). It also becomes
// the file to send again if the server forgets the photo, so a resend keeps the edits.
$("keep").addEventListener("click", async () => {
  const response = await fetch(`api/photos/${state.photo.id}/keep?seq=${state.resultSeq}`, { method: "POST" });
  if (!response.ok) { showError(await errorOf(response)); return; }
  const meta = await response.json();
  const kept = state.result, photo = state.photo;
  kept.toBlob((png) => { if (state.base === kept) photo.file = new File([png], photo.file.name, { type: "image/png" }); }, "image/png");
  state.photo.width = overlay.width = meta.width;
  state.photo.height = overlay.height = meta.height;
  state.base = kept;
  state.result = null;
  state.strokes = [];
  state.before = false;
  showStats({ size: `${meta.width} × ${meta.height}`, result: "–" });
  layout();
  paintOverlay();
  settle("kept: brush the next hole");
  render();
});

// ---- opening photos -------------------------------------------------------------------------

async function sendPhoto(file) {
  const response = await fetch("api/photos", {
    method: "POST", body: file,
    headers: { "Content-Type": file.type || "application/octet-stream", "X-Filename": encodeURIComponent(file.name) },
  });
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

async function resendPhoto() {  // the server forgot the photo (it keeps only the latest few)
  try {
    const meta = await sendPhoto(state.photo.file);
    state.photo.id = meta.id;
    return true;
  } catch (e) {
    return false;
  }
}

async function decodeForView(file, meta) {
  // The browser's own decoding, EXIF orientation applied as the server does; for types it
  // cannot show (TIFF) or sizes that disagree, the server's decoding as PNG.
  const options = { colorSpaceConversion: "none", premultiplyAlpha: "none" };
  try {
    const bitmap = await createImageBitmap(file, { ...options, imageOrientation: "from-image" });
    if (bitmap.width === meta.width && bitmap.height === meta.height) return bitmap;
  } catch (e) { /* fall back to the server's decoding */ }
  const response = await fetch(`api/photos/${meta.id}/photo.png`);
  return createImageBitmap(await response.blob(), options);
}

async function openPhoto(file) {
  if (!file) return;
  hideError();
  const limit = state.info ? state.info.max_upload_bytes : Infinity;
  if (file.size > limit) {
    showError(`${file.name}: ${(file.size / 2 ** 20).toFixed(1)} MB is larger than the limit of ${(limit / 2 ** 20).toFixed(0)} MB`);
    return;
  }
  const previous = document.body.dataset.state;
  setState("busy", `uploading ${file.name}…`);
  let meta, bitmap;
  try {
    meta = await sendPhoto(file);
    bitmap = await decodeForView(file, meta);
  } catch (e) {
    showError(e.message);
    setState(previous, "");
    return;
  }
  cancelInflight();
  state.photo = { ...meta, file };
  state.base = document.createElement("canvas");
  state.base.width = view.width = overlay.width = meta.width;
  state.base.height = view.height = overlay.height = meta.height;
  state.base.getContext("2d").drawImage(bitmap, 0, 0);
  state.result = null;
  state.strokes = [];
  state.before = false;
  $("canvases").hidden = false;
  $("photo-name").textContent = meta.name;
  showStats({ size: `${meta.width} × ${meta.height}`, result: "–", network: "–", server: "–", request: "–" });
  layout();
  paintOverlay();
  settle("brush over what to remove");
  render();
}

$("file").addEventListener("change", () => { openPhoto($("file").files[0]); $("file").value = ""; });
for (const [type, on] of [["dragenter", true], ["dragover", true], ["dragleave", false], ["drop", false]]) {
  stage.addEventListener(type, (event) => {
    event.preventDefault();
    stage.classList.toggle("dragging", on);
    if (type === "drop") openPhoto(event.dataTransfer.files[0]);
  });
}
window.addEventListener("resize", layout);

// ---- start ----------------------------------------------------------------------------------

(async () => {
  try {
    const response = await fetch("api/info");
    if (!response.ok) throw new Error(await errorOf(response));
    state.info = await response.json();
  } catch (e) {
    showError(`cannot reach the server: ${e.message}`);
    return;
  }
  const select = $("backend");
  for (const b of state.info.backends) {
    const option = new Option(b.available ? b.name : `${b.name} (unavailable)`, b.name, false, b.name === state.info.backend);
    option.disabled = !b.available;
    if (b.reason) option.title = b.reason;
    select.add(option);
  }
  showStats({ backend: state.info.backend, device: state.info.device, precision: state.info.precision });
  settle("open or drop a photo");
  document.body.dataset.ready = "true";
})();
