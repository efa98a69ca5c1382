// Train: the same job as `cnnlab train`, in the server; its progress arrives as server-sent
// events and is drawn as curves and first-layer filters.
import {getJSON, postJSON, showError} from "./api.js";
import {drawSigned, lineChart} from "./draw.js";

const $ = (id) => document.getElementById(id);
let source = null;
let curves = null;
let opened = null;

function reset(epochs) {
  curves = {epochs, loss: [], acc: [], valLoss: [], valAcc: []};
  $("tr-done").innerHTML = "";
  $("tr-log").textContent = "";
  draw();
}

function draw() {
  const xMax = Math.max(1, curves.epochs);
  lineChart($("tr-loss"), [{points: curves.loss, color: "#1f5fbf"},
                          {points: curves.valLoss, color: "#e4002b", dots: true}], {xMax});
  lineChart($("tr-acc"), [{points: curves.acc, color: "#1f5fbf"},
                         {points: curves.valAcc, color: "#e4002b", dots: true}], {xMax, yMax: 1});
}

function drawFilters(filters) {
  if (!filters) return;
  const box = $("tr-filters");
  box.innerHTML = "";
  for (const kernel of filters.values) {
    const canvas = document.createElement("canvas");
    drawSigned(canvas, kernel, Math.max(4, Math.floor(40 / kernel.length)));
    box.append(canvas);
  }
  $("tr-filters-caption").textContent = `layer ${filters.layer}'s filters (input channel 0; blue positive, red negative)`;
}

function listen() {
  if (source) source.close();
  source = new EventSource("/api/train/events");
  const on = (kind, handler) => source.addEventListener(kind, (e) => handler(JSON.parse(e.data)));
  on("log", (d) => { $("tr-log").textContent += d.line + "\n"; });
  on("begin", (d) => {
    curves.epochs = d.epochs;
    drawFilters(d.filters);
    $("tr-status").textContent = `training: ${d.steps} steps per epoch…`;
  });
  on("step", (d) => {
    curves.loss.push([d.progress, d.loss, d.epoch]);     // one piece per epoch: the running
    curves.acc.push([d.progress, d.accuracy, d.epoch]);  // means restart with each epoch
    if (d.filters) drawFilters(d.filters);
    $("tr-status").textContent = `epoch ${d.epoch + 1} of ${curves.epochs}, step ${d.step} of ${d.steps}: ` +
      `loss ${d.loss.toFixed(3)}, accuracy ${(100 * d.accuracy).toFixed(1)}%`;
    draw();
  });
  on("epoch", (d) => {
    if (d.val_loss !== undefined) {
      curves.valLoss.push([d.epoch, d.val_loss]);
      curves.valAcc.push([d.epoch, d.val_accuracy]);
    }
    drawFilters(d.filters);
    draw();
  });
  for (const end of ["done", "stopped", "failed"]) {
    on(end, (d) => {
      source.close();
      source = null;
      $("tr-start").disabled = false;
      $("tr-stop").disabled = true;
      if (end === "failed") {
        showError($("tr-error"), {message: d.error});
        $("tr-status").textContent = "the training failed.";
        return;
      }
      const acc = d.metrics && d.metrics.test_accuracy !== undefined
        ? `, test accuracy ${(100 * d.metrics.test_accuracy).toFixed(1)}%` : "";
      $("tr-status").textContent = end === "done" ? `done${acc}.` : "stopped.";
      if (!d.model) {
        $("tr-done").textContent = d.message || "";
        return;
      }
      const box = $("tr-done");
      box.innerHTML = "";
      const text = document.createElement("p");
      text.textContent = `Saved as the checkpoint ${d.checkpoint}${acc}.`;
      const button = document.createElement("button");
      button.textContent = "Open it in the network view";
      button.addEventListener("click", () => opened(d.model.id));
      box.append(text, button);
    });
  }
}

async function start() {
  const settings = {
    model: $("tr-model").value, data: $("tr-data").value, epochs: Number($("tr-epochs").value),
    lr: Number($("tr-lr").value), optimizer: $("tr-optimizer").value,
    batch_size: Number($("tr-batch").value),
  };
  try {
    await postJSON("/api/train/start", settings);
    showError($("tr-error"), null);
    reset(settings.epochs);
    $("tr-status").textContent = "loading the data…";
    $("tr-start").disabled = true;
    $("tr-stop").disabled = false;
    listen();
  } catch (error) {
    showError($("tr-error"), error);
  }
}

async function stop() {
  try {
    await postJSON("/api/train/stop", {});
    $("tr-status").textContent = "stopping after this step…";
  } catch (error) {
    showError($("tr-error"), error);
  }
}

export async function init(hooks) {
  opened = hooks.opened;
  const status = await getJSON("/api/train");
  for (const m of status.options.models) $("tr-model").add(new Option(m, m));
  for (const d of status.options.data) $("tr-data").add(new Option(d, d));
  $("tr-optimizer").addEventListener("change", () => {
    $("tr-lr").value = $("tr-optimizer").value === "adam" ? 0.002 : 0.05;
  });
  $("tr-start").addEventListener("click", start);
  $("tr-stop").addEventListener("click", stop);
  reset(Number($("tr-epochs").value));
  if (status.state === "running") {             // a run started from another tab
    $("tr-start").disabled = true;
    $("tr-stop").disabled = false;
    listen();
  }
}
