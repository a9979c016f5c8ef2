/**
 * Weight initialisation, after torch.nn.init (PyTorch 1.13, torch/nn/init.py). Every function
 * fills its tensor in place under noGrad and returns it, so Parameters can be initialised while
 * they require grad.
 *
 * Each draws from the global generator (seeded by manualSeed) in the same order and with the same
 * bounds as PyTorch, so `manualSeed(s)` followed by the same calls gives bit-identical values to
 * `torch.manual_seed(s)` in Python (test/nn/init.test.ts checks it). `{ generator }` draws from a
 * generator of its own instead (torch ≥ 2.1 has the same keyword).
 *
 * Deviations: 1. Nonlinearity names are camelCase ('leakyRelu', 'convTranspose2d'), modes are
 * 'fanIn' | 'fanOut'. 2. truncNormal_ throws when a ≥ b or std ≤ 0 (PyTorch fills garbage).
 * 3. PyTorch's "mean is more than 2 std from [a, b]" warning goes to process.emitWarning; kaiming
 * init returns zero-element tensors untouched without PyTorch's warning.
 */
import type { NativeGenerator } from '../native/binding.js';
import * as aten from '../ops/generated/ops.gen.js';
import { noGrad } from '../tensor/autograd.js';
import { scalar } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export interface RandomInitOptions {
  /**
   * Draw from this generator (made by `generator(seed)`) instead of the global one. It is a CPU
   * generator, so it serves CPU tensors only; initialise on the CPU, then move the module.
   */
  generator?: NativeGenerator;
}

export type Nonlinearity =
  | 'linear' | 'conv1d' | 'conv2d' | 'conv3d' | 'convTranspose1d' | 'convTranspose2d' | 'convTranspose3d'
  | 'sigmoid' | 'tanh' | 'relu' | 'leakyRelu' | 'selu';

const LINEAR_FUNCTIONS = new Set<string>([
  'linear', 'conv1d', 'conv2d', 'conv3d', 'convTranspose1d', 'convTranspose2d', 'convTranspose3d', 'sigmoid',
]);
const NONLINEARITIES = [...LINEAR_FUNCTIONS, 'tanh', 'relu', 'leakyRelu', 'selu'];

/**
 * The recommended gain for a nonlinearity (torch.nn.init.calculate_gain): 1 for linear layers
 * and sigmoid, 5/3 for tanh, √2 for relu, √(2 / (1 + slope²)) for leakyRelu (slope `param`,
 * default 0.01), 3/4 for selu.
 */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  if (LINEAR_FUNCTIONS.has(nonlinearity)) return 1;
  switch (nonlinearity) {
    case 'tanh': return 5.0 / 3;
    case 'relu': return Math.sqrt(2.0);
    case 'selu': return 3.0 / 4;
    case 'leakyRelu': {
      const slope = param ?? 0.01;
      if (typeof slope !== 'number' || !Number.isFinite(slope)) {
        throw new TypeError(`calculateGain: the negative slope of leakyRelu must be a finite number, got ${String(param)}`);
      }
      return Math.sqrt(2.0 / (1 + slope ** 2));
    }
    default:
      throw new TypeError(`calculateGain: unsupported nonlinearity '${String(nonlinearity)}'; use one of ${NONLINEARITIES.join(', ')}`);
  }
}

/**
 * Fan-in and fan-out of a weight (torch.nn.init._calculate_fan_in_and_fan_out): for a shape
 * (out, in, *kernel), fanIn = in·∏kernel and fanOut = out·∏kernel.
 */
export function fanInAndFanOut(t: Tensor | number[]): { fanIn: number; fanOut: number } {
  const shape = Array.isArray(t) ? t : t.shape;
  if (shape.length < 2) {
    throw new RangeError(`fanInAndFanOut: fan in and fan out need a tensor of at least 2 dims (out, in, ...), got shape [${shape.join(', ')}]`);
  }
  const receptiveField = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * receptiveField, fanOut: shape[0] * receptiveField };
}

export type FanMode = 'fanIn' | 'fanOut';

function correctFan(t: Tensor, mode: FanMode): number {
  if (mode !== 'fanIn' && mode !== 'fanOut') {
    throw new TypeError(`kaiming init: mode must be 'fanIn' or 'fanOut', got ${JSON.stringify(mode)}`);
  }
  return fanInAndFanOut(t)[mode];
}

const generatorOf = (o: RandomInitOptions): NativeGenerator | null => o.generator ?? null;

/** Fills with U(a, b) (torch.nn.init.uniform_). */
export function uniform_(t: Tensor, o: { a?: number; b?: number } & RandomInitOptions = {}): Tensor {
  const a = o.a ?? 0;
  const b = o.b ?? 1;
  if (!(a <= b)) throw new RangeError(`uniform_: the range [a, b) needs a ≤ b, got a = ${a}, b = ${b}`);
  noGrad(() => aten.uniform_(t, a, b, generatorOf(o)));
  return t;
}

/** Fills with N(mean, std²) (torch.nn.init.normal_). */
export function normal_(t: Tensor, o: { mean?: number; std?: number } & RandomInitOptions = {}): Tensor {
  const std = o.std ?? 1;
  if (!(std >= 0)) throw new RangeError(`normal_: std must be ≥ 0, got ${std}`);
  noGrad(() => aten.normal_(t, o.mean ?? 0, std, generatorOf(o)));
  return t;
}

/** Fills with `value` (torch.nn.init.constant_). */
export function constant_(t: Tensor, value: number): Tensor {
  noGrad(() => t.fill_(value));
  return t;
}

export function zeros_(t: Tensor): Tensor {
  noGrad(() => t.zero_());
  return t;
}

export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

export interface KaimingOptions extends RandomInitOptions {
  /** Negative slope of the leakyRelu that follows (only used with 'leakyRelu'); default 0. */
  a?: number;
  /** 'fanIn' (default) keeps the forward variance, 'fanOut' the backward one. */
  mode?: FanMode;
  /** Default 'leakyRelu' (PyTorch's default; with a = 0 it equals 'relu'). */
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, o: KaimingOptions): number {
  const fan = correctFan(t, o.mode ?? 'fanIn');
  const gain = calculateGain(o.nonlinearity ?? 'leakyRelu', o.a ?? 0);
  return gain / Math.sqrt(fan);
}

/**
 * He et al. (2015) uniform init: U(-bound, bound) with bound = gain·√(3 / fan)
 * (torch.nn.init.kaiming_uniform_). Conv and Linear layers use it with a = √5.
 */
export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}): Tensor {
  if (t.numel === 0) return t;
  const bound = Math.sqrt(3.0) * kaimingStd(t, o);
  noGrad(() => aten.uniform_(t, -bound, bound, generatorOf(o)));
  return t;
}

/** He et al. (2015) normal init: N(0, std²) with std = gain / √fan (torch.nn.init.kaiming_normal_). */
export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}): Tensor {
  if (t.numel === 0) return t;
  const std = kaimingStd(t, o);
  noGrad(() => aten.normal_(t, 0, std, generatorOf(o)));
  return t;
}

export interface XavierOptions extends RandomInitOptions {
  /** Scales the standard deviation; default 1. */
  gain?: number;
}

function xavierStd(t: Tensor, o: XavierOptions): number {
  const { fanIn, fanOut } = fanInAndFanOut(t);
  return (o.gain ?? 1) * Math.sqrt(2.0 / (fanIn + fanOut));
}

/**
 * Glorot & Bengio (2010) uniform init: U(-a, a) with a = gain·√(6 / (fanIn + fanOut))
 * (torch.nn.init.xavier_uniform_).
 */
export function xavierUniform_(t: Tensor, o: XavierOptions = {}): Tensor {
  const a = Math.sqrt(3.0) * xavierStd(t, o);
  noGrad(() => aten.uniform_(t, -a, a, generatorOf(o)));
  return t;
}

/** Glorot & Bengio (2010) normal init: N(0, gain²·2 / (fanIn + fanOut)) (torch.nn.init.xavier_normal_). */
export function xavierNormal_(t: Tensor, o: XavierOptions = {}): Tensor {
  const std = xavierStd(t, o);
  noGrad(() => aten.normal_(t, 0, std, generatorOf(o)));
  return t;
}

export interface TruncNormalOptions extends RandomInitOptions {
  /** Default 0. */
  mean?: number;
  /** Default 1. */
  std?: number;
  /** Lower cut-off, absolute (not in units of std, as in timm and PyTorch); default -2. */
  a?: number;
  /** Upper cut-off, absolute; default 2. */
  b?: number;
}

/** The standard normal CDF Φ(x) = (1 + erf(x/√2)) / 2, with libtorch's double-precision erf. */
function normalCdf(x: number): number {
  const erf = tidy(() => scalar(x / Math.SQRT2, { dtype: 'float64' }).erf().item() as number);
  return (1 + erf) / 2;
}

/**
 * Normal N(mean, std²) truncated to [a, b] (timm's trunc_normal_), by inverse-CDF sampling as
 * timm does, and torch.nn.init.trunc_normal_ did in 1.13 (2.13's samples by rejection instead;
 * the timm models vicinity ports initialise with timm's): u ~ U(2Φ(α) - 1, 2Φ(β) - 1), then
 * x = mean + std·√2·erfinv(u), clamped to [a, b] against round-off; α = (a - mean)/std, β = (b - mean)/std.
 */
export function truncNormal_(t: Tensor, o: TruncNormalOptions = {}): Tensor {
  const mean = o.mean ?? 0;
  const std = o.std ?? 1;
  const a = o.a ?? -2;
  const b = o.b ?? 2;
  if (!(std > 0)) throw new RangeError(`truncNormal_: std must be > 0, got ${std}`);
  if (!(a < b)) throw new RangeError(`truncNormal_: the bounds need a < b, got a = ${a}, b = ${b}`);
  if (mean < a - 2 * std || mean > b + 2 * std) {
    process.emitWarning(`truncNormal_: mean ${mean} is more than 2 std from [${a}, ${b}]; ` +
      'the distribution of values may be incorrect');
  }
  const l = normalCdf((a - mean) / std);
  const u = normalCdf((b - mean) / std);
  noGrad(() => {
    aten.uniform_(t, 2 * l - 1, 2 * u - 1, generatorOf(o));
    aten.erfinv_(t);
    t.mul_(std * Math.sqrt(2.0));
    t.add_(mean);
    t.clamp_(a, b);
  });
  return t;
}
