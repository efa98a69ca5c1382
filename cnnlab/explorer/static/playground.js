// Convolution playground: the window steps over the padded input; the server (cnnlab's
// explain) answers the output, the entry's worked sum and the output-size formula filled in.
import {getJSON, postJSON, showError} from "./api.js";
import {matrixTable} from "./draw.js";

const $ = (id) => document.getElementById(id);
let at = [0, 0];
let shape = null;            // the output's [F, H, W]
let answer = null;
let checked = null;          // the last homework check: {wrong: [...]} or null
let timer = null;

function op() {
  const v = $("pg-op").value;
  return v.startsWith("pool") ? "pool" : v;
}

function padding() {
  const choice = $("pg-padding").value;
  if (choice === "int") return Number($("pg-pad").value);
  if (choice === "sides") return $("pg-sides").value.trim().split(/[\s,]+/).map(Number);
  if (op() === "pool") return 0;
  return choice;
}

function request(check) {
  const body = {input: $("pg-input").value, at: [...at]};
  if (check !== undefined) body.check = check;
  if (op() === "conv") {
    Object.assign(body, {
      kernel: $("pg-kernel").value, bias: Number($("pg-bias").value) || 0,
      stride: Number($("pg-stride").value), dilation: Number($("pg-dilation").value),
      padding: padding(), flip: $("pg-flip").checked,
    });
  } else if (op() === "pool") {
    Object.assign(body, {
      mode: $("pg-op").value === "pool-avg" ? "avg" : "max", size: Number($("pg-size").value),
      stride: Number($("pg-stride").value), padding: padding(),
    });
  }
  return body;
}

async function compute(check) {
  try {
    const result = await postJSON(`/api/explain/${op()}`, request(check));
    showError($("pg-error"), null);
    answer = result;
    shape = result.output_shape;
    render();
  } catch (error) {
    if (String(error.message).includes("outside the output") && (at[0] || at[1])) {
      at = [0, 0];                       // the output shrank under the window: start over
      return compute(check);
    }
    showError($("pg-error"), error);
  }
}

function later() {
  clearTimeout(timer);
  checked = null;
  $("pg-check-result").innerHTML = "";
  timer = setTimeout(() => compute(), 250);
}

function render() {
  const entry = answer.entry;
  const rows = new Set(entry.window.rows), cols = new Set(entry.window.columns);
  const pads = answer.kind === "conv2d" ? answer.padding
    : answer.kind === "relu" ? [[0, 0], [0, 0]] : [[answer.padding[0], answer.padding[0]], [answer.padding[1], answer.padding[1]]];
  const padded = $("pg-padded");
  padded.innerHTML = "";
  answer.padded.forEach((plane, c) => {
    const cells = {};
    const h = plane.length, w = plane[0].length;
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        const inside = i >= pads[0][0] && i < h - pads[0][1] && j >= pads[1][0] && j < w - pads[1][1];
        // a convolution's window reads every channel; pooling and ReLU one channel each
        const inWindow = rows.has(i) && cols.has(j) && (answer.kind === "conv2d" || c === entry.index[0]);
        cells[`${i},${j}`] = [inside ? "" : "pad", inWindow ? "window" : ""].join(" ").trim();
      }
    }
    if (answer.padded.length > 1) padded.append(Object.assign(document.createElement("div"), {textContent: `channel ${c}`, className: "muted"}));
    padded.append(matrixTable(plane, cells));
  });
  const anyPad = pads.flat().some((p) => p > 0);
  const h = answer.padded[0].length, w = answer.padded[0][0].length;
  $("pg-input-title").textContent = `${anyPad ? "Padded input" : "Input"} (${h}×${w})`;
  const kernel = $("pg-kernel-grid");
  kernel.innerHTML = "";
  if (answer.kernel) for (const plane of answer.kernel[0]) kernel.append(matrixTable(plane));
  const out = answer.output[0];
  const cells = {}, titles = {};
  let shown = out;
  if ($("pg-homework").checked) {
    shown = out.map((row) => row.map(() => "?"));
    if (checked) {
      shown = out.map((row) => row.slice());
      for (let i = 0; i < out.length; i++) for (let j = 0; j < out[0].length; j++) cells[`${i},${j}`] = "right";
      for (const w of checked) {
        const [, i, j] = w.index;
        cells[`${i},${j}`] = "wrong";
        titles[`${i},${j}`] = `you wrote ${w.given}; correct: ${w.worked}`;
        shown[i][j] = `${w.given} → ${w.correct}`;
      }
    }
  }
  const key = `${entry.index[1]},${entry.index[2]}`;
  cells[key] = ((cells[key] || "") + " current").trim();
  $("pg-output").innerHTML = "";
  $("pg-output").append(matrixTable(shown, cells, titles));
  $("pg-output-title").textContent = `Output (${shape[1]}×${shape[2]})`;
  $("pg-pos").textContent = `entry row ${entry.index[1]}, column ${entry.index[2]} of ${shape[1]}×${shape[2]}`;
  $("pg-sum").textContent = $("pg-homework").checked && !checked ? "(homework mode: sums are shown after you check)" : entry.text;
  $("pg-formula").textContent = answer.formula.join("\n");
}

function step(di, dj) {
  if (!shape) return;
  let [i, j] = at;
  if (di === 0) {                          // next/previous in reading order
    let k = i * shape[2] + j + dj;
    k = (k + shape[1] * shape[2]) % (shape[1] * shape[2]);
    [i, j] = [Math.floor(k / shape[2]), k % shape[2]];
  } else {
    i = (i + di + shape[1]) % shape[1];
  }
  at = [i, j];
  compute(checked ? $("pg-answer").value : undefined);
}

async function check() {
  try {
    const result = await postJSON(`/api/explain/${op()}`, request($("pg-answer").value));
    showError($("pg-error"), null);
    answer = result;
    shape = result.output_shape;
    checked = result.wrong;
    const total = shape[1] * shape[2];
    const box = $("pg-check-result");
    box.innerHTML = "";
    const head = document.createElement("p");
    head.className = checked.length ? "error" : "ok";
    head.textContent = `${total - checked.length} of ${total} entries right` + (checked.length ? ":" : ".");
    box.append(head);
    for (const w of checked) {
      const pre = document.createElement("pre");
      pre.className = "wrong-sum";
      pre.textContent = `entry (${w.index[1]}, ${w.index[2]}): you wrote ${w.given}, correct is ${w.correct}\n  ${w.worked}`;
      box.append(pre);
    }
    render();
  } catch (error) {
    showError($("pg-error"), error);
  }
}

function updateVisibility() {
  const kind = op();
  document.querySelector(".playground").dataset.op = kind;
  const choice = $("pg-padding").value;
  if (kind !== "conv" && !["valid", "int"].includes(choice)) $("pg-padding").value = "valid";
  $("view-playground").dataset.padding = $("pg-padding").value;
  $("view-playground").dataset.homework = $("pg-homework").checked;
}

function usePreset(preset) {
  $("pg-op").value = preset.op === "pool" ? `pool-${preset.mode}` : preset.op;
  $("pg-input").value = preset.input;
  if (preset.op === "conv") {
    $("pg-kernel").value = preset.kernel;
    $("pg-kernel-name").value = "";
    $("pg-bias").value = preset.bias;
    $("pg-dilation").value = preset.dilation;
    $("pg-flip").checked = preset.flip;
  }
  if (preset.op === "pool") $("pg-size").value = preset.size;
  if (preset.stride) $("pg-stride").value = preset.stride;
  if (preset.padding === "valid" || preset.padding === 0 || preset.padding == null) {
    $("pg-padding").value = "valid";
  } else {
    $("pg-padding").value = "int";
    $("pg-pad").value = preset.padding;
  }
  at = [0, 0];
  updateVisibility();
  later();
}

export async function init() {
  const {presets} = await getJSON("/api/presets");
  for (const p of presets) $("pg-preset").add(new Option(p.title, p.id));
  $("pg-preset").addEventListener("change", () => {
    const p = presets.find((x) => x.id === $("pg-preset").value);
    if (p) usePreset(p);
  });
  const {kernels} = await getJSON("/api/kernels");
  for (const k of kernels) {
    if (k.text.includes("\n\n")) continue;          // two kernels (sobel): not one matrix
    $("pg-kernel-name").add(new Option(k.name, k.text.trim().split("\n").map((r) => r.trim()).join("; ")));
  }
  $("pg-kernel-name").addEventListener("change", () => {
    if ($("pg-kernel-name").value) $("pg-kernel").value = $("pg-kernel-name").value;
    later();
  });
  $("pg-homework").addEventListener("change", () => {
    checked = null;
    $("pg-check-result").innerHTML = "";
    updateVisibility();
    if (answer) render();
  });
  for (const id of ["pg-op", "pg-input", "pg-kernel", "pg-bias", "pg-flip", "pg-size", "pg-padding",
                    "pg-pad", "pg-sides", "pg-stride", "pg-dilation"]) {
    $(id).addEventListener("input", () => { updateVisibility(); later(); });
  }
  $("pg-prev").addEventListener("click", () => step(0, -1));
  $("pg-next").addEventListener("click", () => step(0, 1));
  $("pg-check").addEventListener("click", check);
  document.addEventListener("keydown", (e) => {
    if (!$("view-playground").classList.contains("active")) return;
    if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
    const moves = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]};
    if (!moves[e.key]) return;
    e.preventDefault();
    step(...moves[e.key]);
  });
  updateVisibility();
  compute();
}
