/**
 * ONNX forms (opset 17, standard domain only) of the network ATen ops: convolution, pooling,
 * normalisation in eval mode, activations, products, softmax and sampling. Each translation
 * writes nodes whose last output is bound to the op's result (CallView.outName).
 *
 * Deviations from ATen worth knowing:
 *  1. gelu has no ONNX op before opset 20: it is written as 0.5·x·(1 + erf(x/√2)) (or the tanh
 *     form), the same formula ATen evaluates.
 *  2. softplus keeps ATen's threshold (x·β > threshold → x) with Where, so large inputs do not
 *     overflow exp.
 *  3. im2col becomes Pad + k² strided Slices + Concat (no ONNX op extracts patches).
 */
import type { CallView, GraphBuilder, OpTranslation } from './graph.js';

const pair = (v: number[]) => (v.length === 1 ? [v[0], v[0]] : v);
const single = (v: number[]) => (v.length === 1 ? v : v.slice(0, 1));

/** ATen's symmetric padding per spatial dim → ONNX [begin…, end…]. */
const symmetricPads = (p: number[]) => [...p, ...p];

function conv(spatial: 1 | 2): OpTranslation {
  return (g, c) => {
    const norm = spatial === 2 ? pair : single;
    const weight = c.value(1).shape as number[];
    const kernel = weight.slice(2);
    const dilation = norm(c.ints(5, [1]));
    let pads: number[];
    const padArg = c.raw(4);
    if (typeof padArg === 'string') {
      // conv2d.padding: 'valid' or 'same' (ATen puts the odd extra pixel after, as SAME_UPPER)
      const total = kernel.map((k, i) => (padArg === 'same' ? dilation[i] * (k - 1) : 0));
      pads = [...total.map((t) => Math.floor(t / 2)), ...total.map((t) => t - Math.floor(t / 2))];
    } else pads = symmetricPads(norm(c.ints(4, [0])));
    const bias = c.optionalTensor(2);
    g.op('Conv', [c.tensor(0), c.tensor(1), ...(bias ? [bias] : [])], {
      kernel_shape: kernel, strides: norm(c.ints(3, [1])), pads, dilations: dilation, group: c.int(6, 1),
    }, c.outName());
  };
}

function batchNorm(g: GraphBuilder, c: CallView): void {
  if (c.raw(5) === true) throw c.error('training-mode batch norm cannot be exported; call model.eval() (export does this)');
  const channels = c.value(0).shape[1] as number;
  const dtype = c.dtype(0);
  const weight = c.optionalTensor(1) ?? g.constant(new Array(channels).fill(1), dtype);
  const bias = c.optionalTensor(2) ?? g.constant(new Array(channels).fill(0), dtype);
  const mean = c.optionalTensor(3);
  const variance = c.optionalTensor(4);
  if (!mean || !variance) throw c.error('batch norm without running statistics (track_running_stats=false) cannot be exported');
  g.op('BatchNormalization', [c.tensor(0), weight, bias, mean, variance], { epsilon: { float: c.number(7) } }, c.outName());
}

function layerNorm(g: GraphBuilder, c: CallView): void {
  const shape = c.ints(1);
  const size = shape.reduce((a, b) => a * b, 1);
  const dtype = c.dtype(0);
  const scale = c.optionalTensor(2) ?? g.constant(new Array(size).fill(1), dtype, shape);
  const bias = c.optionalTensor(3);
  g.op('LayerNormalization', [c.tensor(0), scale, ...(bias ? [bias] : [])], {
    axis: -shape.length, epsilon: { float: c.number(4, 1e-5) },
  }, c.outName());
}

/** (x − mean) / √(var + ε) over each group of C/G channels, then the per-channel affine. */
function groupNorm(g: GraphBuilder, c: CallView): void {
  const shape = c.value(0).shape;
  const channels = shape[1] as number;
  const groups = c.int(1);
  const dtype = c.dtype(0);
  const rest = (shape.slice(2) as number[]).reduce((a, b) => a * b, channels / groups);
  const grouped = g.op('Reshape', [c.tensor(0), g.shape([shape[0], groups, rest])]);        // (B, G, C/G·spatial)
  const axes = { axes: [2], keepdims: 1 };
  const centred = g.op('Sub', [grouped, g.op('ReduceMean', [grouped], axes)]);
  const variance = g.op('ReduceMean', [g.op('Mul', [centred, centred])], axes);
  const normed = g.op('Div', [centred, g.op('Sqrt', [g.op('Add', [variance, g.constant(c.number(4, 1e-5), dtype, [])])])]);
  let y = g.op('Reshape', [normed, g.shape(shape)]);                                          // (B, C, …)
  const perChannel = g.constant([channels, ...shape.slice(2).map(() => 1)], 'int64');
  const weight = c.optionalTensor(2);
  const bias = c.optionalTensor(3);
  if (weight) y = g.op('Mul', [y, g.op('Reshape', [weight, perChannel])]);
  if (bias) y = g.op('Add', [y, g.op('Reshape', [bias, perChannel])]);
  g.op('Identity', [y], {}, c.outName());
}

/** Resize to the traced output size; ATen's coordinate conventions. */
function upsample(mode: 'nearest' | 'linear' | 'cubic'): OpTranslation {
  return (g, c) => {
    const align = mode !== 'nearest' && c.raw(2) === true;
    const transform = mode === 'nearest' ? 'asymmetric' : align ? 'align_corners' : 'pytorch_half_pixel';
    g.op('Resize', [c.tensor(0), '', '', g.shape(c.output().shape)], {
      mode, coordinate_transformation_mode: transform, ...(mode === 'nearest' ? { nearest_mode: 'floor' } : {}),
      ...(mode === 'cubic' ? { cubic_coeff_a: { float: -0.75 } } : {}),
    }, c.outName());
  };
}

function maxPool(g: GraphBuilder, c: CallView): void {
  const kernel = pair(c.ints(1));
  const stride = c.ints(2, []);
  g.op('MaxPool', [c.tensor(0)], {
    kernel_shape: kernel, strides: stride.length ? pair(stride) : kernel, pads: symmetricPads(pair(c.ints(3, [0]))),
    dilations: pair(c.ints(4, [1])), ceil_mode: c.raw(5) === true ? 1 : 0,
  }, c.outName());
}

function avgPool(g: GraphBuilder, c: CallView): void {
  if (c.raw(6) !== null && c.raw(6) !== undefined) throw c.error('divisor_override has no ONNX form');
  const kernel = pair(c.ints(1));
  const stride = c.ints(2, []);
  g.op('AveragePool', [c.tensor(0)], {
    kernel_shape: kernel, strides: stride.length ? pair(stride) : kernel, pads: symmetricPads(pair(c.ints(3, [0]))),
    ceil_mode: c.raw(4) === true ? 1 : 0, count_include_pad: c.raw(5) === false ? 0 : 1,
  }, c.outName());
}

function adaptivePool(kind: 'Average' | 'Max'): OpTranslation {
  return (g, c) => {
    const out = pair(c.ints(1));
    const input = c.value(0).shape.slice(-2) as number[];
    if (out[0] === 1 && out[1] === 1) {
      g.op(`Global${kind}Pool`, [c.tensor(0)], {}, c.outName());
      return;
    }
    if (input.some((s, i) => s % out[i] !== 0)) {
      throw c.error(`adaptive pooling from ${input.join('×')} to ${out.join('×')} has no fixed kernel; only sizes that divide evenly export`);
    }
    const kernel = input.map((s, i) => s / out[i]);
    g.op(`${kind}Pool`, [c.tensor(0)], { kernel_shape: kernel, strides: kernel }, c.outName());
  };
}

function linear(g: GraphBuilder, c: CallView): void {
  const bias = c.optionalTensor(2);
  if (c.rank(0) === 2) {
    g.op('Gemm', [c.tensor(0), c.tensor(1), ...(bias ? [bias] : [])], { transB: 1 }, c.outName());
    return;
  }
  const weightT = g.op('Transpose', [c.tensor(1)], { perm: [1, 0] });
  const product = g.op('MatMul', [c.tensor(0), weightT], {}, bias ? undefined : c.outName());
  if (bias) g.op('Add', [product, bias], {}, c.outName());
}

/** β·input + α·(a @ b) (addmm, baddbmm). */
function addProduct(g: GraphBuilder, c: CallView): void {
  const dtype = c.output().dtype;
  const beta = c.number(3, 1);
  const alpha = c.number(4, 1);
  let product = g.op('MatMul', [c.tensor(1), c.tensor(2)]);
  if (alpha !== 1) product = g.op('Mul', [product, g.constant(alpha, dtype)]);
  if (beta === 0) {
    g.op('Identity', [product], {}, c.outName());
    return;
  }
  const base = beta === 1 ? c.tensor(0) : g.op('Mul', [c.tensor(0), g.constant(beta, dtype)]);
  g.op('Add', [base, product], {}, c.outName());
}

function einsum(g: GraphBuilder, c: CallView): void {
  const equation = (c.raw(0) as string).replace(/\s/g, '');
  const dtype = c.output().dtype;
  const inputs = c.tensors(1).map((name, k) => g.cast(name, c.value(1, k).dtype, dtype));
  g.op('Einsum', inputs, { equation }, c.outName());
}

function softmax(opType: 'Softmax' | 'LogSoftmax'): OpTranslation {
  return (g, c) => {
    const dtype = c.output().dtype;
    g.op(opType, [g.cast(c.tensor(0), c.dtype(0), dtype)], { axis: c.int(1) }, c.outName());
  };
}

function gelu(g: GraphBuilder, c: CallView): void {
  const x = c.tensor(0);
  const dtype = c.dtype(0);
  let inner: string;
  if (c.raw(1) === 'tanh') {
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    const cube = g.op('Mul', [g.op('Mul', [x, x]), x]);
    const sum = g.op('Add', [x, g.op('Mul', [cube, g.constant(0.044715, dtype)])]);
    inner = g.op('Tanh', [g.op('Mul', [sum, g.constant(Math.sqrt(2 / Math.PI), dtype)])]);
  } else {
    inner = g.op('Erf', [g.op('Mul', [x, g.constant(Math.SQRT1_2, dtype)])]);  // erf(x/√2)
  }
  const half = g.op('Mul', [x, g.constant(0.5, dtype)]);
  g.op('Mul', [half, g.op('Add', [inner, g.constant(1, dtype)])], {}, c.outName());
}

function softplus(g: GraphBuilder, c: CallView): void {
  const x = c.tensor(0);
  const dtype = c.dtype(0);
  const beta = c.number(1, 1);
  const threshold = c.number(2, 20);
  const scaled = beta === 1 ? x : g.op('Mul', [x, g.constant(beta, dtype)]);
  let soft = g.op('Softplus', [scaled]);
  if (beta !== 1) soft = g.op('Div', [soft, g.constant(beta, dtype)]);
  const linearPart = g.op('Greater', [scaled, g.constant(threshold, dtype)]);
  g.op('Where', [linearPart, x, soft], {}, c.outName());
}

function unary(opType: string): OpTranslation {
  return (g, c) => { g.op(opType, [c.tensor(0)], {}, c.outName()); };
}

const silu: OpTranslation = (g, c) => {
  g.op('Mul', [c.tensor(0), g.op('Sigmoid', [c.tensor(0)])], {}, c.outName());
};

const GRID_MODES = ['bilinear', 'nearest', 'bicubic'];
const GRID_PADDING = ['zeros', 'border', 'reflection'];

function gridSample(g: GraphBuilder, c: CallView): void {
  if (c.rank(0) !== 4) throw c.error('only 2-D grid sampling (4-D input) has an ONNX form in opset 17');
  g.op('GridSample', [c.tensor(0), c.tensor(1)], {
    mode: GRID_MODES[c.int(2)], padding_mode: GRID_PADDING[c.int(3)], align_corners: c.raw(4) === true ? 1 : 0,
  }, c.outName());
}

/** (B, C, H, W) → (B, C·kh·kw, L), ordered (C, kh, kw) as ATen's im2col. */
function im2col(g: GraphBuilder, c: CallView): void {
  const [kh, kw] = pair(c.ints(1));
  const [dh, dw] = pair(c.ints(2));
  const [ph, pw] = pair(c.ints(3));
  const [sh, sw] = pair(c.ints(4));
  const [, C, H, W] = c.value(0).shape as number[];
  const Ho = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  let x = c.tensor(0);
  if (ph || pw) x = g.op('Pad', [x, g.constant([0, 0, ph, pw, 0, 0, ph, pw], 'int64')]);
  const axes = g.constant([2, 3], 'int64');
  const steps = g.constant([sh, sw], 'int64');
  const patches: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const starts = g.constant([i * dh, j * dw], 'int64');
      const ends = g.constant([i * dh + (Ho - 1) * sh + 1, j * dw + (Wo - 1) * sw + 1], 'int64');
      const patch = g.op('Slice', [x, starts, ends, axes, steps]);            // (B, C, Ho, Wo)
      patches.push(g.op('Unsqueeze', [patch, g.constant([2], 'int64')]));   // (B, C, 1, Ho, Wo)
    }
  }
  const stacked = g.op('Concat', patches, { axis: 2 });                        // (B, C, kh·kw, Ho, Wo)
  g.op('Reshape', [stacked, g.shape([...c.output().shape.slice(0, 1), C * kh * kw, Ho * Wo])], {}, c.outName());
}

export const NN_OPS: Record<string, OpTranslation> = {
  'aten::conv1d': conv(1),
  'aten::conv2d': conv(2),
  'aten::conv2d.padding': conv(2),
  'aten::batch_norm': batchNorm,
  'aten::layer_norm': layerNorm,
  'aten::max_pool2d': maxPool,
  'aten::avg_pool2d': avgPool,
  'aten::adaptive_avg_pool2d': adaptivePool('Average'),
  'aten::adaptive_max_pool2d': adaptivePool('Max'),
  'aten::linear': linear,
  'aten::matmul': (g, c) => { g.op('MatMul', [c.tensor(0), c.tensor(1)], {}, c.outName()); },
  'aten::mm': (g, c) => { g.op('MatMul', [c.tensor(0), c.tensor(1)], {}, c.outName()); },
  'aten::bmm': (g, c) => { g.op('MatMul', [c.tensor(0), c.tensor(1)], {}, c.outName()); },
  'aten::addmm': addProduct,
  'aten::baddbmm': addProduct,
  'aten::einsum': einsum,
  'aten::softmax.int': softmax('Softmax'),
  'aten::log_softmax.int': softmax('LogSoftmax'),
  'aten::relu': unary('Relu'),
  'aten::sigmoid': unary('Sigmoid'),
  'aten::tanh': unary('Tanh'),
  'aten::silu': silu,
  'aten::gelu': gelu,
  'aten::softplus': softplus,
  'aten::hardsigmoid': (g, c) => { g.op('HardSigmoid', [c.tensor(0)], { alpha: { float: 1 / 6 }, beta: { float: 0.5 } }, c.outName()); },
  'aten::leaky_relu': (g, c) => { g.op('LeakyRelu', [c.tensor(0)], { alpha: { float: c.number(1, 0.01) } }, c.outName()); },
  'aten::elu': (g, c) => {
    if (c.number(2, 1) !== 1 || c.number(3, 1) !== 1) throw c.error('elu with scale or input_scale ≠ 1 has no ONNX form');
    g.op('Elu', [c.tensor(0)], { alpha: { float: c.number(1, 1) } }, c.outName());
  },
  'aten::group_norm': groupNorm,
  'aten::upsample_nearest2d.vec': upsample('nearest'),
  'aten::upsample_bilinear2d.vec': upsample('linear'),
  'aten::upsample_bicubic2d.vec': upsample('cubic'),
  'aten::pixel_shuffle': (g, c) => { g.op('DepthToSpace', [c.tensor(0)], { blocksize: c.int(1), mode: 'CRD' }, c.outName()); },
  'aten::pixel_unshuffle': (g, c) => {
    // SpaceToDepth orders channels (block, C); ATen's pixel_unshuffle (C, block): reshape/transpose
    const [b, ch, h, w] = c.value(0).shape;
    const r = c.int(1);
    const split = g.op('Reshape', [c.tensor(0), g.shape([b, ch, (h as number) / r, r, (w as number) / r, r])]);
    const moved = g.op('Transpose', [split], { perm: [0, 1, 3, 5, 2, 4] });                // (B, C, r, r, H/r, W/r)
    g.op('Reshape', [moved, g.shape(c.output().shape)], {}, c.outName());
  },
  'aten::grid_sampler': gridSample,
  'aten::im2col': im2col,
};
