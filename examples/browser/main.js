// The browser example: an ONNX model exported by `vicinity export` runs in onnxruntime-web's
// WebAssembly backend. Draw on the pad or pick a test image; the page shows the top-3 classes.
//
// What the page loads (written by build.mjs beside it):
//   model.onnx    the exported network (input 'input' (batch, C, H, W), output 'logits')
//   model.json    the model's ONNX metadata_props, read at build time: class names, input size,
//                 the normalisation it was trained with (mean, std)
//   samples.json  a few test images (grey levels 0–255) with their labels
//   ort/          onnxruntime-web's .wasm, served from here (no CDN)
import * as ort from 'onnxruntime-web/wasm';

ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
// Threads need a cross-origin-isolated page (SharedArrayBuffer); one thread works everywhere.
ort.env.wasm.numThreads = 1;

const $ = (id) => document.getElementById(id);

/** Probabilities from logits (numerically stable softmax). */
function softmax(logits) {
  const max = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Indices of the k largest values, largest first. */
function topK(values, k) {
  return [...values.keys()].sort((a, b) => values[b] - values[a]).slice(0, k);
}

async function loadJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

class Classifier {
  constructor(session, info) {
    this.session = session;
    this.info = info;
    [this.height, this.width] = info.inputSize;
  }

  static async load() {
    const info = await loadJson('model.json');
    const session = await ort.InferenceSession.create('model.onnx', { executionProviders: ['wasm'] });
    return new Classifier(session, info);
  }

  /** grey levels in [0, 1], H·W row-major → logits, as the trainer's evaluation transform feeds the model. */
  async logits(grey) {
    const { mean, std, inChannels } = this.info;
    const n = this.height * this.width;
    const input = new Float32Array(inChannels * n);
    for (let c = 0; c < inChannels; c++) {
      for (let i = 0; i < n; i++) input[c * n + i] = (grey[i] - mean[c]) / std[c];
    }
    const feeds = { input: new ort.Tensor('float32', input, [1, inChannels, this.height, this.width]) };
    const out = await this.session.run(feeds);
    return { input, logits: Array.from(out.logits.data) };
  }
}

/** The pad: white strokes on black (as Fashion-MNIST's images), read back at the model's size. */
function setUpPad(canvas, onDrawn) {
  const ctx = canvas.getContext('2d');
  const clear = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  };
  clear();
  let last = null;
  const point = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * (canvas.width / r.width), (e.clientY - r.top) * (canvas.height / r.height)];
  };
  canvas.addEventListener('pointerdown', (e) => {
    canvas.setPointerCapture(e.pointerId);
    last = point(e);
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = point(e);
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = canvas.width / 12;
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
  });
  const end = () => {
    if (!last) return;
    last = null;
    onDrawn();
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  return { ctx, clear };
}

/** The pad's pixels averaged down to width × height grey levels in [0, 1]. */
function padPixels(canvas, width, height) {
  const small = document.createElement('canvas');
  small.width = width;
  small.height = height;
  const ctx = small.getContext('2d');
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(canvas, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const grey = new Float32Array(width * height);
  for (let i = 0; i < grey.length; i++) grey[i] = rgba[4 * i] / 255;
  return grey;
}

/** Draws grey levels (0–255) scaled onto a canvas. */
function paint(canvas, pixels, width, height) {
  const small = document.createElement('canvas');
  small.width = width;
  small.height = height;
  const image = small.getContext('2d').createImageData(width, height);
  pixels.forEach((v, i) => image.data.set([v, v, v, 255], 4 * i));
  small.getContext('2d').putImageData(image, 0, 0);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function showTop3(classes, logits, label, ms) {
  const probs = softmax(logits);
  const list = $('top3');
  list.replaceChildren(...topK(probs, 3).map((k) => {
    const li = document.createElement('li');
    li.dataset.class = String(k);
    li.dataset.prob = String(probs[k]);
    li.textContent = `${classes[k] ?? `class ${k}`} — ${(100 * probs[k]).toFixed(1)}%`;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.round(120 * probs[k])}px`;
    li.append(bar);
    return li;
  }));
  $('timing').textContent = `${label}: ${ms.toFixed(1)} ms in onnxruntime-web (wasm)`;
}

async function main() {
  const classifier = await Classifier.load();
  const { info } = classifier;
  const classes = info.classes ?? [];
  const { width, height } = classifier;
  $('model-line').textContent = `${info.model} · ${info.inputSize.join('×')} · ${classes.length || info.numClasses} classes · weights: ${info.weights}`;

  const pad = $('pad');
  let runs = 0;
  const predict = async (grey, label) => {
    const started = performance.now();
    const { input, logits } = await classifier.logits(grey);
    showTop3(classes, logits, label, performance.now() - started);
    // for tests and the console: what the model was fed and what it answered
    window.vicinityDemo = { ...window.vicinityDemo, lastInput: Array.from(input), lastLogits: logits, runs: ++runs, label };
    document.body.dataset.runs = String(runs);
  };
  const { clear } = setUpPad(pad, () => predict(padPixels(pad, width, height), 'drawing'));
  $('clear').addEventListener('click', () => {
    clear();
    $('top3').replaceChildren();
  });

  const samples = await loadJson('samples.json');
  for (const [index, sample] of samples.images.entries()) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.index = String(index);
    button.title = `test image ${sample.index}: ${classes[sample.label] ?? sample.label}`;
    const thumb = document.createElement('canvas');
    thumb.width = width;
    thumb.height = height;
    paint(thumb, sample.pixels, width, height);
    button.append(thumb);
    button.addEventListener('click', () => {
      document.querySelectorAll('#samples button').forEach((b) => b.classList.toggle('active', b === button));
      paint(pad, sample.pixels, width, height);
      predict(Float32Array.from(sample.pixels, (v) => v / 255), `test image ${sample.index}`);
    });
    $('samples').append(button);
  }
  window.vicinityDemo = { info, samples: samples.images.length, runs: 0 };
  document.body.dataset.state = 'ready';
}

main().catch((e) => {
  document.body.dataset.state = 'error';
  $('model-line').textContent = `Could not start: ${e.message}`;
  console.error(e);
});
