#!/usr/bin/env node
// Builds the browser example into a static folder:
//   node examples/browser/build.mjs --model la.onnx [--out examples/browser/dist] [--samples 12] [--data-source auto|full|subset]
// The page is bundled with esbuild; onnxruntime-web's WebAssembly files are copied beside it
// (served from the page's own origin, no CDN); the model's ONNX metadata_props (written by
// `vicinity export`) become model.json; a few Fashion-MNIST test images become samples.json.
// Needs vicinity compiled (npm run build:ts): it reads the metadata and the images with it.
import { build } from 'esbuild';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const vicinity = (file) => import(pathToFileURL(path.join(root, 'dist/src', file)).href);

/** onnxruntime-web's wasm backend: the module the bundle fetches at run time. */
const ORT_FILES = ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs'];

function parseList(meta, key) {
  if (meta[key] === undefined) return undefined;
  try {
    return JSON.parse(meta[key]);
  } catch {
    throw new Error(`the model's metadata '${key}' is not JSON: ${meta[key]}`);
  }
}

/** model.json: what the page needs from the model's metadata_props. */
async function modelInfo(modelFile) {
  const { readModelHeader } = await vicinity('export/onnx-proto.js');
  const { metadata: meta, opset } = readModelHeader(await readFile(modelFile));
  const need = ['model', 'numClasses', 'inChannels', 'inputSize'];
  const missing = need.filter((k) => meta[k] === undefined);
  if (missing.length) {
    throw new Error(`${modelFile} lacks the metadata ${missing.join(', ')}; export it with \`vicinity export\``);
  }
  const inChannels = Number(meta.inChannels);
  if (inChannels !== 1) throw new Error(`${meta.model} takes ${inChannels}-channel images; the example page draws greyscale (1-channel) ones`);
  const inputSize = (meta.inputSize.match(/\d+/g) ?? []).map(Number);
  const dataset = meta.dataset ?? 'fashion-mnist';
  const { datasetStats } = await vicinity('data/load-dataset.js');
  const stats = meta.mean ? { mean: parseList(meta, 'mean'), std: parseList(meta, 'std') } : datasetStats(dataset, 1);
  return {
    model: meta.model, opset, dataset, numClasses: Number(meta.numClasses), inChannels, inputSize,
    mean: stats.mean, std: stats.std, classes: parseList(meta, 'classes'), weights: meta.weights ?? '', top1: meta.top1 ?? '',
  };
}

/** The first `count` test images of the dataset, at the model's input size. */
async function testImages(info, count, dataSource) {
  const { loadDataset } = await vicinity('data/load-dataset.js');
  const test = await loadDataset({ name: info.dataset, split: 'test', channels: 1, source: dataSource });
  const { store } = test;
  if (store.kind !== 'memory' || store.height !== info.inputSize[0] || store.width !== info.inputSize[1]) {
    throw new Error(`${info.dataset}'s test images are not ${info.inputSize.join('×')} grey images; the page shows those only`);
  }
  const size = store.height * store.width;
  const images = [];
  for (let i = 0; i < Math.min(count, test.count); i++) {
    images.push({ index: i, label: test.labels[i], pixels: Array.from(store.pixels.subarray(i * size, (i + 1) * size)) });
  }
  return { dataset: info.dataset, source: test.source ?? 'full', images };
}

/** Builds the page for `model` into `out`; returns out's absolute path. */
export async function buildSite({ model, out = path.join(here, 'dist'), samples = 12, dataSource = 'auto' }) {
  if (!model) throw new Error('build: pass --model <file.onnx> (made by `vicinity export`)');
  const info = await modelInfo(model);
  const images = await testImages(info, samples, dataSource);
  out = path.resolve(out);
  await rm(out, { recursive: true, force: true });
  await mkdir(path.join(out, 'ort'), { recursive: true });
  await build({
    entryPoints: [path.join(here, 'main.js')], bundle: true, format: 'esm', platform: 'browser', target: 'es2022',
    outfile: path.join(out, 'main.js'), minify: true, sourcemap: true, logLevel: 'warning',
  });
  const ortDist = path.join(root, 'node_modules/onnxruntime-web/dist');
  await Promise.all([
    ...ORT_FILES.map((f) => copyFile(path.join(ortDist, f), path.join(out, 'ort', f))),
    copyFile(path.join(here, 'index.html'), path.join(out, 'index.html')),
    copyFile(path.join(here, 'style.css'), path.join(out, 'style.css')),
    copyFile(model, path.join(out, 'model.onnx')),
    writeFile(path.join(out, 'model.json'), JSON.stringify(info, null, 2)),
    writeFile(path.join(out, 'samples.json'), JSON.stringify(images)),
  ]);
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { model: { type: 'string' }, out: { type: 'string' }, samples: { type: 'string' }, 'data-source': { type: 'string' } },
  });
  try {
    const out = await buildSite({
      model: values.model, out: values.out, samples: values.samples ? Number(values.samples) : undefined,
      dataSource: values['data-source'] ?? 'auto',
    });
    console.log(`built ${path.relative(process.cwd(), out) || '.'}; serve it with: node examples/browser/serve.mjs ${path.relative(process.cwd(), out)}`);
  } catch (e) {
    console.error(`build: ${e.message}`);
    process.exitCode = 1;
  }
}
