// Drawing only: numbers come from the server, these functions turn them into pixels and tables.

// base64 text -> bytes.
export function decode(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let k = 0; k < raw.length; k++) bytes[k] = raw.charCodeAt(k);
  return bytes;
}

// Grey levels 0..255 (the server stretched each map from its minimum to its maximum) as an
// image of h×w cells, each scale×scale pixels; `channels` = 3 draws three maps as RGB.
export function drawLevels(canvas, levels, offset, h, w, scale, channels = 1) {
  canvas.width = w * scale;
  canvas.height = h * scale;
  const image = new ImageData(w, h);
  for (let k = 0; k < h * w; k++) {
    for (let c = 0; c < 3; c++) {
      const at = offset + (channels === 3 ? c * h * w : 0) + k;
      image.data[4 * k + c] = at < levels.length ? levels[at] : 0;
    }
    image.data[4 * k + 3] = 255;
  }
  const small = document.createElement("canvas");
  small.width = w; small.height = h;
  small.getContext("2d").putImageData(image, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, w * scale, h * scale);
}

// Kernels with signed values: negative red, positive blue, zero white.
export function drawSigned(canvas, values, scale) {
  const h = values.length, w = values[0].length;
  canvas.width = w * scale;
  canvas.height = h * scale;
  const ctx = canvas.getContext("2d");
  let m = 0;
  for (const row of values) for (const v of row) m = Math.max(m, Math.abs(v));
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const t = m ? values[i][j] / m : 0;
      const fade = Math.round(255 * (1 - Math.abs(t)));
      ctx.fillStyle = t >= 0 ? `rgb(${fade},${fade},255)` : `rgb(255,${fade},${fade})`;
      ctx.fillRect(j * scale, i * scale, scale, scale);
    }
  }
}

export function formatNumber(v) {
  if (v === null || v === undefined) return "−∞";
  if (Number.isInteger(v)) return String(v);
  const text = Math.abs(v) >= 1000 ? v.toFixed(1) : v.toFixed(4);
  return text.replace(/0+$/, "").replace(/\.$/, "");
}

// A matrix as a table; `cells` maps "i,j" to a CSS class (window, current, wrong...).
export function matrixTable(values, cells = {}, titles = {}) {
  const table = document.createElement("table");
  table.className = "matrix";
  values.forEach((row, i) => {
    const tr = table.insertRow();
    row.forEach((v, j) => {
      const td = tr.insertCell();
      td.textContent = typeof v === "string" ? v : formatNumber(v);
      const key = `${i},${j}`;
      if (cells[key]) td.className = cells[key];
      if (titles[key]) td.title = titles[key];
    });
  });
  return table;
}

// A line chart of several series [{points: [[x, y, piece]...], dots: bool, color}], axes labelled.
export function lineChart(canvas, series, {xMax = 1, yMin = 0, yMax = null} = {}) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, left = 44, bottom = 24, top = 8, right = 10;
  ctx.clearRect(0, 0, W, H);
  let hi = yMax;
  if (hi === null) {
    hi = 0;
    for (const s of series) for (const [, y] of s.points) hi = Math.max(hi, y);
    hi = hi > 0 ? hi * 1.1 : 1;
  }
  const x = (v) => left + (W - left - right) * v / xMax;
  const y = (v) => H - bottom - (H - bottom - top) * (v - yMin) / (hi - yMin);
  ctx.strokeStyle = "#999"; ctx.fillStyle = "#444"; ctx.font = "11px sans-serif";
  ctx.beginPath(); ctx.moveTo(left, top); ctx.lineTo(left, H - bottom); ctx.lineTo(W - right, H - bottom);
  ctx.stroke();
  for (let k = 0; k <= 4; k++) {
    const v = yMin + (hi - yMin) * k / 4;
    ctx.fillText(v.toFixed(hi - yMin < 2 ? 2 : 1), 4, y(v) + 4);
  }
  for (let e = 0; e <= xMax; e++) ctx.fillText(`${e}`, x(e) - 3, H - 8);
  ctx.fillText("epochs", W - right - 40, H - bottom - 6);
  for (const s of series) {
    ctx.strokeStyle = ctx.fillStyle = s.color;
    if (s.dots || s.points.length < 3) {      // a single point draws no line
      for (const [a, b] of s.points) { ctx.beginPath(); ctx.arc(x(a), y(b), 4, 0, 7); ctx.fill(); }
    } else {
      ctx.beginPath();               // a point's third entry starts a new piece when it changes
      s.points.forEach(([a, b, piece], k) => (k && piece === s.points[k - 1][2]
        ? ctx.lineTo(x(a), y(b)) : ctx.moveTo(x(a), y(b))));
      ctx.stroke();
    }
  }
}
