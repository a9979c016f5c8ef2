/**
 * Grad-CAM (Selvaraju et al., ICCV 2017, Eq. 1–2) for any vicinity classifier:
 *   α_k = mean_{ij} ∂y_c/∂A^k_ij,   L = ReLU(Σ_k α_k A^k)
 * over the activations A of one layer (default: the last top-level child whose output is a
 * feature map — a ResNet's layer4, a small ConvNet's features), upsampled bilinearly
 * (align_corners false) to the input size and scaled to [0, 1] by its maximum (all zeros stay 0).
 * Token outputs (B, N, D) with a square N (LSAG) are read as (B, D, √N, √N) maps.
 */
import type { Module } from '../nn/module.js';
import * as F from '../ops/functional.js';
import { enableGrad, grad, noGrad } from '../tensor/autograd.js';
import { keep, tidy } from '../tensor/scope.js';
import { tensor } from '../tensor/creation.js';
import type { Device, Tensor } from '../tensor/tensor.js';

export interface GradCamOptions {
  /** Dotted module name (model.namedModules()); default defaultCamLayer(model, input). */
  layer?: string;
  /** Class per image; default each image's top-1 prediction. */
  classIndex?: number | number[];
}

export interface GradCamResult {
  layer: string;
  /** (B, H, W) in [0, 1], at the input's size. */
  cam: Tensor;
  /** (B, h, w) before upsampling and scaling (ReLU(Σ α A)). */
  raw: Tensor;
  /** The classes explained. */
  classIndex: number[];
  logits: Tensor;
}

/** Activations of a layer's output: (B, C, h, w), or tokens (B, N, D) with square N as (B, D, √N, √N). */
function asMap(name: string, t: Tensor): Tensor {
  if (t.ndim === 4) return t;
  if (t.ndim === 3) {
    const [b, n, d] = t.shape;
    const side = Math.round(Math.sqrt(n));
    if (side * side === n) return t.transpose(1, 2).reshape([b, d, side, side]);   // (B, D, √N, √N)
  }
  throw new Error(`Grad-CAM: layer '${name}' outputs shape [${t.shape}], not a feature map (B, C, h, w) or square tokens (B, N, D); ` +
    'choose a convolutional or attention stage with --layer');
}

/** The last top-level child whose output is a feature map (4-D, or square tokens) larger than 1×1. */
export function defaultCamLayer(model: Module, input: Tensor): string {
  const found: string[] = [];
  const handles = [...model.namedChildren()].map(([name, child]) => child.registerForwardHook((_m, _a, out) => {
    const t = out as Tensor;
    // A map with more than one position: a pooled (B, C, 1, 1) output explains nothing spatially.
    if (!(t && typeof t === 'object' && 'ndim' in t)) return;
    if ((t.ndim === 4 && t.shape[2] * t.shape[3] > 1) || (t.ndim === 3 && t.shape[1] > 1 && Number.isInteger(Math.sqrt(t.shape[1])))) found.push(name);
  }));
  try {
    noGrad(() => tidy(() => { model.forward(input); }));
  } finally {
    for (const h of handles) h.remove();
  }
  const last = found.at(-1);
  if (last === undefined) throw new Error(`Grad-CAM: ${model.constructor.name} has no top-level child with a feature-map output; pass --layer`);
  return last;
}

/**
 * Grad-CAM maps of `input` (B, C, H, W) for `model` (eval mode is the caller's choice).
 *
 * Errors: an Error naming an unknown layer (with the names there are), a layer that did not run,
 * or one without a feature-map output.
 */
export function gradCam(model: Module, input: Tensor, options: GradCamOptions = {}): GradCamResult {
  const layer = options.layer ?? defaultCamLayer(model, input);
  const names = new Map(model.namedModules());
  const target = names.get(layer);
  if (!target) {
    const top = [...model.namedChildren()].map(([n]) => n);
    throw new Error(`Grad-CAM: no layer '${layer}' in ${model.constructor.name}; its stages are ${top.join(', ')} (dotted names reach deeper modules)`);
  }
  return tidy(() => enableGrad(() => {
    let activation: Tensor | null = null;
    const handle = target.registerForwardHook((_m, _a, out) => { activation = out as Tensor; });
    let logits: Tensor;
    try {
      logits = model.forward(input);
    } finally {
      handle.remove();
    }
    if (!activation) throw new Error(`Grad-CAM: layer '${layer}' did not run in the forward pass`);
    const a = asMap(layer, activation as Tensor);
    const [batch] = logits.shape;
    const classes = options.classIndex === undefined
      ? Array.from(logits.argmax(1).dataSync() as BigInt64Array, Number)
      : Array.isArray(options.classIndex) ? options.classIndex : Array(batch).fill(options.classIndex);
    if (classes.length !== batch || classes.some((c) => !Number.isInteger(c) || c < 0 || c >= logits.shape[1])) {
      throw new Error(`Grad-CAM: classIndex must give one class in 0..${logits.shape[1] - 1} per image, got [${classes}]`);
    }
    const onehot = F.oneHot(tensor(classes, { device: logits.device as Device }).long(), logits.shape[1]).to(logits.dtype); // (B, classes)
    const score = logits.mul(onehot).sum();                         // Σ_b y_{c_b}
    const [g] = grad(score, activation as Tensor);
    if (!g) throw new Error(`Grad-CAM: the score does not depend on layer '${layer}'`);
    const alpha = asMap(layer, g).mean([2, 3], { keepdim: true });  // Eq. 1 α_k  (B, C, 1, 1)
    const raw = a.detach().mul(alpha).sum(1).relu();                // Eq. 2 ReLU(Σ_k α_k A^k)  (B, h, w)
    const [H, W] = input.shape.slice(2);
    const up = F.interpolate(raw.unsqueeze(1), { size: [H, W], mode: 'bilinear', alignCorners: false }).squeeze(1); // (B, H, W)
    const peak = up.amax([1, 2], { keepdim: true });
    const cam = up.div(peak.clamp(1e-12));                 // [0, 1]; an all-zero map stays 0
    return { layer, cam: keep(cam), raw: keep(raw), classIndex: classes, logits: keep(logits.detach()) };
  }));
}
