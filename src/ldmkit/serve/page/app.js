// ldmkit's web page: plain JavaScript over the /v1 API (no framework, nothing fetched from
// elsewhere). The token, when the server asks for one, is kept in this browser's localStorage.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let running = null; // the job id being followed
let source = null; // its EventSource
let boxes = []; // layout boxes: {class, box: [x0, y0, x1, y1]} in fractions

function token() { return localStorage.getItem("ldmkit-token") || ""; }
function withToken(url) {
  const t = token();
  return t ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(t) : url;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    const given = window.prompt("This server needs its token:");
    if (given) { localStorage.setItem("ldmkit-token", given); return api(path, options); }
  }
  return response;
}

function message(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).slice(-1)[0]}: ${d.msg}`).join("; ");
  }
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

function selected() { return models.find((m) => m.name === $("model").value); }

function showInputs() {
  const model = selected();
  const takes = new Set(model ? model.inputs : []);
  document.querySelectorAll("[data-input]").forEach((el) => {
    el.hidden = !takes.has(el.dataset.input);
  });
  if (!model) return;
  $("model-info").textContent =
    `${model.size}x${model.size} px, hash ${model.hash}` +
    (model.spatial ? `, ${model.spatial.replace("_", " ")}` : "");
  $("width").placeholder = $("height").placeholder = model.size;
  $("width").step = $("height").step = model.multiple_of;
  $("guidance").placeholder = model.default_guidance;
  const classes = $("class");
  classes.innerHTML = "";
  for (let c = 0; c < model.classes; c++) classes.add(new Option(String(c), String(c)));
}

async function loadModels() {
  const response = await api("/v1/models");
  const body = await response.json();
  models = body.models || [];
  const select = $("model");
  const keep = select.value;
  select.innerHTML = "";
  models.forEach((m) => select.add(new Option(m.name, m.name)));
  if (keep) select.value = keep;
  showInputs();
  const loras = body.loras || [];
  $("loras").hidden = loras.length === 0;
  $("loras").textContent = `LoRAs: ${loras.join(", ")} (add <lora:NAME:1> to the prompt)`;
  $("health").textContent = body.state === "ready" ? `ready: ${models.length} model(s)` : body.state;
  if (body.state === "loading") setTimeout(loadModels, 1000);
}

function readFile(input) {
  return new Promise((resolve) => {
    const file = input.files && input.files[0];
    if (!file) return resolve(null);
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.readAsDataURL(file);
  });
}

// The mask canvas: the init image underneath, white strokes where to repaint.
const maskCanvas = $("mask");
const maskPaint = document.createElement("canvas");
let maskImage = null;
function resetMask() {
  maskPaint.width = maskCanvas.width; maskPaint.height = maskCanvas.height;
  drawMask();
}
function drawMask() {
  const g = maskCanvas.getContext("2d");
  g.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
  if (maskImage) g.drawImage(maskImage, 0, 0, maskCanvas.width, maskCanvas.height);
  g.globalAlpha = 0.6; g.drawImage(maskPaint, 0, 0); g.globalAlpha = 1;
}
function paintAt(event) {
  const rect = maskCanvas.getBoundingClientRect();
  const x = (event.clientX - rect.left) * maskCanvas.width / rect.width;
  const y = (event.clientY - rect.top) * maskCanvas.height / rect.height;
  const g = maskPaint.getContext("2d");
  g.fillStyle = "#fff"; g.beginPath(); g.arc(x, y, 12, 0, 2 * Math.PI); g.fill();
  drawMask();
}
maskCanvas.addEventListener("pointerdown", (e) => { maskCanvas.painting = true; paintAt(e); });
maskCanvas.addEventListener("pointermove", (e) => { if (maskCanvas.painting) paintAt(e); });
window.addEventListener("pointerup", () => { maskCanvas.painting = false; });
$("clear-mask").onclick = resetMask;
$("init_image").addEventListener("change", async () => {
  const url = await readFile($("init_image"));
  if (!url) return;
  maskImage = new Image();
  maskImage.onload = () => {
    maskCanvas.width = maskImage.width; maskCanvas.height = maskImage.height; resetMask();
  };
  maskImage.src = url;
});
function maskDataUrl() {
  const out = document.createElement("canvas");
  out.width = maskCanvas.width; out.height = maskCanvas.height;
  const g = out.getContext("2d");
  g.fillStyle = "#000"; g.fillRect(0, 0, out.width, out.height); g.drawImage(maskPaint, 0, 0);
  return out.toDataURL("image/png");
}

// The layout canvas: drag a box, it takes the class typed above.
const layoutCanvas = $("layout");
let dragStart = null;
function drawBoxes(extra) {
  const g = layoutCanvas.getContext("2d");
  const w = layoutCanvas.width, h = layoutCanvas.height;
  g.clearRect(0, 0, w, h);
  g.font = "12px sans-serif";
  [...boxes, ...(extra ? [extra] : [])].forEach((b) => {
    const [x0, y0, x1, y1] = b.box;
    g.strokeStyle = "#1565c0"; g.strokeRect(x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h);
    g.fillStyle = "#1565c0"; g.fillText(String(b.class), x0 * w + 3, y0 * h + 13);
  });
}
function fraction(event) {
  const rect = layoutCanvas.getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - rect.left) / rect.width), clamp((event.clientY - rect.top) / rect.height)];
}
function boxOf(a, b) {
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
}
function boxClass() {
  const text = $("box-class").value.trim();
  return /^\d+$/.test(text) ? Number(text) : text;
}
layoutCanvas.addEventListener("pointerdown", (e) => { dragStart = fraction(e); });
layoutCanvas.addEventListener("pointermove", (e) => {
  if (dragStart) drawBoxes({ class: boxClass(), box: boxOf(dragStart, fraction(e)) });
});
layoutCanvas.addEventListener("pointerup", (e) => {
  if (!dragStart) return;
  const box = boxOf(dragStart, fraction(e));
  dragStart = null;
  if (box[2] - box[0] > 0.02 && box[3] - box[1] > 0.02) boxes.push({ class: boxClass(), box });
  drawBoxes();
});
$("clear-boxes").onclick = () => { boxes = []; drawBoxes(); };

async function requestBody() {
  const model = selected();
  const takes = new Set(model ? model.inputs : []);
  const body = { model: model && model.name };
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  if (takes.has("prompts")) {
    body.prompts = [$("prompt").value];
    if ($("negative_prompt").value.trim()) body.negative_prompt = $("negative_prompt").value;
  }
  if (takes.has("classes")) body.classes = [Number($("class").value)];
  if (takes.has("layouts")) body.layouts = [boxes];
  if (takes.has("init_image")) {
    const image = await readFile($("init_image"));
    if (image) {
      body.init_image = image;
      if (takes.has("strength")) body.strength = number("strength");
      if (takes.has("mask")) body.mask = maskDataUrl();
    }
  }
  if (takes.has("low_res")) body.low_res = await readFile($("low_res"));
  body.sampler = $("sampler").value;
  body.steps = number("steps");
  if (number("guidance") !== null) body.guidance = number("guidance");
  const seed = number("seed");
  body.seed = seed === null || seed < 0 ? Math.floor(Math.random() * 2 ** 31) : seed;
  if (takes.has("width") && number("width")) body.width = number("width");
  if (takes.has("height") && number("height")) body.height = number("height");
  body.count = number("count") || 1;
  return body;
}

function follow(job) {
  running = job.id;
  $("cancel").disabled = false;
  $("progress").value = 0;
  $("status").textContent = job.position ? `queued (${job.position} ahead)` : "queued";
  source = new EventSource(withToken(`/v1/jobs/${job.id}/events`));
  source.addEventListener("queued", (e) => {
    const d = JSON.parse(e.data);
    $("status").textContent = d.position ? `queued (${d.position} ahead)` : "starting";
  });
  source.addEventListener("progress", (e) => {
    const d = JSON.parse(e.data);
    $("progress").max = d.total; $("progress").value = d.step;
    const eta = d.eta_s === null ? "" : `, about ${Math.round(d.eta_s)} s left`;
    $("status").textContent = `step ${d.step} / ${d.total}${eta}`;
  });
  source.addEventListener("preview", (e) => { $("preview").src = JSON.parse(e.data).image; });
  const finish = (e) => {
    const d = JSON.parse(e.data);
    source.close(); source = null; running = null;
    $("cancel").disabled = true;
    $("status").textContent = d.state + (d.error ? `: ${d.error}` : "");
    if (d.state === "done") {
      $("progress").value = $("progress").max;
      const result = $("result");
      result.innerHTML = "";
      d.images.forEach((url) => {
        const img = document.createElement("img");
        img.src = withToken(url); img.className = "output"; result.appendChild(img);
      });
    }
    loadGallery();
  };
  ["done", "failed", "cancelled"].forEach((kind) => source.addEventListener(kind, finish));
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").textContent = "";
  const body = await requestBody();
  const response = await api("/v1/jobs", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.status === 202) return follow(answer);
  const retry = response.headers.get("Retry-After");
  $("error").textContent = message(answer.detail) + (retry ? ` (retry in ${retry} s)` : "");
});

$("cancel").onclick = async () => { if (running) await api(`/v1/jobs/${running}`, { method: "DELETE" }); };
$("model").onchange = showInputs;

function useSettings(request, model) {
  if (model) $("model").value = model;
  showInputs();
  const set = (id, value) => { if (value !== undefined && value !== null) $(id).value = value; };
  const tags = (request.loras || []).map((l) => ` <lora:${l.name}:${l.scale}>`).join("");
  set("prompt", ((request.prompts || [])[0] || "") + tags);
  set("negative_prompt", request.negative_prompt || "");
  set("class", (request.classes || [])[0]);
  set("sampler", request.sampler); set("steps", request.steps); set("guidance", request.guidance);
  set("seed", request.seed); set("width", request.width); set("height", request.height);
  set("count", request.count); set("strength", request.strength);
  if (request.layouts && request.layouts[0]) { boxes = request.layouts[0]; drawBoxes(); }
  window.scrollTo(0, 0);
}

async function loadGallery() {
  const response = await api("/v1/jobs?state=done&limit=24");
  if (!response.ok) return;
  const gallery = $("gallery");
  gallery.innerHTML = "";
  (await response.json()).jobs.forEach((job) => {
    job.images.forEach((url, i) => {
      const r = job.request;
      const card = document.createElement("div");
      card.className = "card";
      const img = document.createElement("img");
      img.src = withToken(url);
      const text = document.createElement("pre");
      const what = (r.prompts || []).join(" | ") || (r.classes ? `class ${r.classes}` : "");
      text.textContent = `${what}\n${r.sampler}, ${r.steps} steps, guidance ${r.guidance}, ` +
        `seed ${r.seed + i}\n${job.model}`;
      const use = document.createElement("button");
      use.type = "button"; use.textContent = "Use these settings"; use.className = "use";
      use.onclick = () => useSettings(Object.assign({}, r, { seed: r.seed + i, count: 1 }), job.model);
      card.append(img, text, use);
      gallery.appendChild(card);
    });
  });
}

resetMask();
drawBoxes();
loadModels().then(loadGallery);
