// Network view: draw or pick an image; the server answers the class probabilities and every
// layer's output; a click on any value asks for its worked sum and receptive field.
import {getJSON, postForm, postJSON, showError} from "./api.js";
import {decode, drawLevels, formatNumber} from "./draw.js";

const $ = (id) => document.getElementById(id);
let current = null;          // the server's last answer (layers, input_id, model)
let marked = null;           // {canvas, redraw} of the clicked map
let modelId = null;
let pending = null;

export async function refreshModels(select) {
  const {models} = await getJSON("/api/models");
  const box = $("net-model");
  box.innerHTML = "";
  for (const m of models) {
    const acc = m.val_accuracy == null ? "" : `, test accuracy ${(100 * m.val_accuracy).toFixed(1)}%`;
    box.add(new Option(`${m.name} (${m.model} on ${m.data}${acc})`, m.id));
  }
  if (!models.length) {
    showError($("net-error"), "No checkpoint is served yet: start cnnlab serve with a CHECKPOINT, or train one on the Train tab.");
    return;
  }
  box.value = select || modelId || models[0].id;
  await chooseModel(models.find((m) => m.id === box.value));
}

async function chooseModel(model) {
  modelId = model.id;
  $("net-table").textContent = model.table;
  clearCanvas();
  $("net-layers").innerHTML = "";
  $("net-probs").innerHTML = "";
  $("net-label").textContent = "";
  $("net-sum").textContent = "";
  $("net-where").textContent = "";
  const strip = $("net-samples");
  strip.innerHTML = "";
  try {
    const {samples} = await getJSON(`/api/samples?model=${modelId}`);
    for (const s of samples) {
      const img = new Image();
      img.src = s.png;
      img.alt = `test image of a ${s.label}`;
      img.title = `test image ${s.index} (a ${s.label})`;
      img.addEventListener("click", () => useSample(s, img));
      strip.append(img);
    }
  } catch (error) {
    strip.textContent = error.message;
  }
}

function clearCanvas() {
  const ctx = $("net-draw").getContext("2d");
  ctx.fillStyle = "black";
  ctx.fillRect(0, 0, 280, 280);
}

async function useSample(sample, img) {
  const ctx = $("net-draw").getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img, 0, 0, 280, 280);
  await run(() => postJSON("/api/network", {model: modelId, sample: sample.index}));
}

function submitDrawing() {
  $("net-draw").toBlob((blob) => {
    const form = new FormData();
    form.append("image", blob, "drawing.png");
    run(() => postForm(`/api/network?model=${modelId}`, form));
  }, "image/png");
}

async function run(request) {
  const ticket = (pending = {});
  try {
    const answer = await request();
    if (ticket !== pending) return;            // a newer drawing is on its way
    showError($("net-error"), null);
    current = answer;
    render();
  } catch (error) {
    showError($("net-error"), error);
  }
}

function render() {
  $("net-label").textContent = current.label;
  $("net-true").textContent = current.true_label == null ? "" : `true label: ${current.true_label}`;
  const probs = $("net-probs");
  probs.innerHTML = "";
  current.probabilities.forEach((p, k) => {
    const row = document.createElement("div");
    row.className = "prob" + (current.classes[k] === current.label ? " top" : "");
    row.innerHTML = `<span class="cls"></span><span class="bar"><span></span></span><span class="pct"></span>`;
    row.querySelector(".cls").textContent = current.classes[k];
    row.querySelector(".bar span").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".pct").textContent = `${(100 * p).toFixed(1)}%`;
    probs.append(row);
  });
  const columns = $("net-layers");
  columns.innerHTML = "";
  marked = null;
  for (const layer of current.layers) columns.append(layerColumn(layer));
  drawField(null);
  $("net-sum").textContent = "";
  $("net-where").textContent = "";
}

function layerColumn(layer) {
  const column = document.createElement("div");
  column.className = "layer" + (layer.convolution ? " conv" : "");
  const head = document.createElement("h3");
  head.textContent = layer.index < 0 ? "input" : `${layer.name} ${layer.layer}`;
  const shape = document.createElement("div");
  shape.className = "shape";
  shape.textContent = layer.shape.join("×");
  column.append(head, shape);
  const maps = document.createElement("div");
  maps.className = "maps";
  const levels = decode(layer.pixels);
  if (layer.shape.length === 3) {
    const [channels, h, w] = layer.shape;
    const scale = Math.max(1, Math.floor(56 / w));
    for (let c = 0; c < channels; c++) {
      const canvas = document.createElement("canvas");
      canvas.title = `channel ${c}: from ${formatNumber(layer.low[c])} (black) to ${formatNumber(layer.high[c])} (white)`;
      const redraw = () => drawLevels(canvas, levels, c * h * w, h, w, scale);
      redraw();
      if (layer.index >= 0) {
        canvas.addEventListener("click", (e) => {
          const i = Math.min(h - 1, Math.floor(e.offsetY / scale));
          const j = Math.min(w - 1, Math.floor(e.offsetX / scale));
          mark(canvas, redraw, scale, i, j);
          explain(layer, [c, i, j]);
        });
      }
      maps.append(canvas);
    }
  } else {
    const n = layer.shape[0], cols = Math.min(n, 10), rows = Math.ceil(n / cols), scale = 10;
    const canvas = document.createElement("canvas");
    canvas.title = `${n} values, from ${formatNumber(layer.low[0])} (black) to ${formatNumber(layer.high[0])} (white)`;
    const redraw = () => drawLevels(canvas, levels, 0, rows, cols, scale);
    redraw();
    canvas.addEventListener("click", (e) => {
      const i = Math.floor(e.offsetY / scale), j = Math.floor(e.offsetX / scale);
      if (i * cols + j >= n) return;
      mark(canvas, redraw, scale, i, j);
      explain(layer, [i * cols + j]);
    });
    maps.append(canvas);
    if (layer === current.layers[current.layers.length - 1] && n === current.classes.length) {
      const note = document.createElement("div");
      note.className = "shape";
      note.textContent = `the scores of classes ${current.classes[0]}…${current.classes[n - 1]}, left to right; softmax gives the probabilities`;
      maps.append(note);
    }
  }
  column.append(maps);
  return column;
}

function mark(canvas, redraw, scale, i, j) {
  if (marked) marked.redraw();
  marked = {canvas, redraw};
  const ctx = canvas.getContext("2d");
  ctx.strokeStyle = "#e4002b";
  ctx.lineWidth = 2;
  ctx.strokeRect(j * scale, i * scale, scale, scale);
}

async function explain(layer, at) {
  try {
    const answer = await postJSON("/api/network/explain", {
      model: current.model, input_id: current.input_id, layer: layer.index, at,
    });
    showError($("net-error"), null);
    const where = at.length === 3 ? `channel ${at[0]}, row ${at[1]}, column ${at[2]}` : `unit ${at[0]}`;
    const box = answer.box;
    const field = box.whole ? "it sees the whole image"
      : `it sees rows ${box.top}..${box.bottom}, columns ${box.left}..${box.right} ` +
        `(a ${box.size.join("×")} receptive field, clipped to the image)`;
    $("net-where").textContent = `layer ${answer.layer} ${answer.description}, ${where}: ` +
      `value ${formatNumber(answer.value)}; ${field}.`;
    $("net-sum").textContent = answer.text;
    drawField(box);
  } catch (error) {
    showError($("net-error"), error);
  }
}

// The input as the network sees it, with the receptive field outlined.
function drawField(box) {
  const canvas = $("net-field");
  const input = current.layers[0];
  const [channels, h, w] = input.shape;
  const scale = Math.max(1, Math.floor(168 / w));
  drawLevels(canvas, decode(input.pixels), 0, h, w, scale, channels === 3 ? 3 : 1);
  if (!box) return;
  const ctx = canvas.getContext("2d");
  ctx.strokeStyle = "#e4002b";
  ctx.lineWidth = 2;
  ctx.fillStyle = "rgba(228, 0, 43, 0.18)";
  const x = box.left * scale, y = box.top * scale;
  const width = (box.right - box.left + 1) * scale, height = (box.bottom - box.top + 1) * scale;
  ctx.fillRect(x, y, width, height);
  ctx.strokeRect(x + 1, y + 1, width - 2, height - 2);
}

function initDrawing() {
  const canvas = $("net-draw");
  const ctx = canvas.getContext("2d");
  clearCanvas();
  let drawing = false, last = null;
  const point = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    last = point(e);
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = point(e);
    ctx.strokeStyle = "white";
    ctx.lineWidth = 24;             // about 2.4 pixels at 28×28, as MNIST strokes
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    submitDrawing();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("net-clear").addEventListener("click", () => { clearCanvas(); pending = null; });
}

export function init() {
  initDrawing();
  $("net-model").addEventListener("change", () => refreshModels($("net-model").value));
  $("net-upload").addEventListener("change", () => {
    const file = $("net-upload").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("image", file);
    run(() => postForm(`/api/network?model=${modelId}`, form));
    $("net-upload").value = "";
  });
  refreshModels().catch((error) => showError($("net-error"), error));
}
