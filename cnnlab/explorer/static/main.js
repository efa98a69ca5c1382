// The page: four views behind tabs; each view's module draws what the server computes.
import {getJSON} from "./api.js";
import * as network from "./network.js";
import * as playground from "./playground.js";
import * as filters from "./filters.js";
import * as train from "./train.js";

export function show(view) {
  for (const b of document.querySelectorAll("#tabs button")) {
    b.classList.toggle("active", b.dataset.view === view);
  }
  for (const s of document.querySelectorAll(".view")) {
    s.classList.toggle("active", s.id === `view-${view}`);
  }
}

for (const b of document.querySelectorAll("#tabs button")) {
  b.addEventListener("click", () => show(b.dataset.view));
}

getJSON("/api/health").then((h) => {
  document.getElementById("version").textContent = `cnnlab ${h.version}`;
});
network.init();
playground.init();
filters.init();
train.init({opened: async (id) => { await network.refreshModels(id); show("network"); }});
