// Filter lab: a photo filtered by cnnlab's filters (the same code as `cnnlab filter`).
import {getJSON, postForm, showError} from "./api.js";

const $ = (id) => document.getElementById(id);

async function apply() {
  const file = $("fl-upload").files[0];
  if (!file) {
    showError($("fl-error"), "Choose a photo first.");
    return;
  }
  const form = new FormData();
  form.append("image", file);
  form.append("kernel", $("fl-kernel").value.trim() || $("fl-kernel-name").value);
  form.append("border", $("fl-border").value);
  form.append("map", $("fl-map").value);
  form.append("equalize", $("fl-equalize").checked);
  form.append("gray", $("fl-gray").checked);
  try {
    const r = await postForm("/api/filter", form);
    showError($("fl-error"), null);
    $("fl-original").src = r.original;
    $("fl-original").alt = "the original photo";
    $("fl-result").src = r.result;
    $("fl-result").alt = "the filtered photo";
    $("fl-kernel-text").textContent = r.kernel;
    $("fl-kernel-caption").textContent = r.kernels.length > 1
      ? `${r.kernels.length} kernels, combined as √(a² + b²)` : "kernel";
    $("fl-result-caption").textContent =
      `result ${r.result_shape.slice(0, 2).join("×")}, border ${r.border}, signed values: ${r.mapping}`;
  } catch (error) {
    showError($("fl-error"), error);
  }
}

export async function init() {
  const {kernels} = await getJSON("/api/kernels");
  for (const k of kernels) $("fl-kernel-name").add(new Option(`${k.name}: ${k.description}`, k.name));
  $("fl-kernel-name").value = "sobel";
  $("fl-apply").addEventListener("click", apply);
  $("fl-upload").addEventListener("change", apply);
  for (const id of ["fl-kernel-name", "fl-border", "fl-map", "fl-equalize", "fl-gray"]) {
    $(id).addEventListener("change", () => { if ($("fl-upload").files[0]) apply(); });
  }
}
