/**
 * Seeded random numbers for data order and augmentation.
 *
 * Every random choice of the input pipeline is drawn from a stream keyed by what it is for —
 * (seed, epoch, sample position) for an image's augmentation, (seed, epoch, batch, tag) for a
 * batch's mixup — never from a shared sequential generator. So the batches are the same whether
 * one worker or eight assembled them, in whatever order they finished, and a resumed run replays
 * exactly the draws an uninterrupted one would have made.
 *
 * The stream is SplitMix64's mixer over the key (Steele, Lea & Flood 2014) feeding xoshiro128**
 * (Blackman & Vigna 2018): 32-bit integer arithmetic only, so it is exact in JavaScript.
 */

/** A deterministic stream of random numbers. */
export interface Rng {
  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Uniform in [low, high). */
  uniform(low: number, high: number): number;
  /** Standard normal (Box–Muller). */
  normal(): number;
  /** Beta(α, α), for mixup's λ (via two gamma draws, Marsaglia–Tsang). */
  beta(alpha: number): number;
}

/** 32-bit mix of a 32-bit word (the finaliser of MurmurHash3 / SplitMix32). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Four 32-bit state words from a key of integers (each any safe integer, negative included). */
function seedState(key: readonly number[]): Uint32Array {
  const state = new Uint32Array(4);
  let h = 0x9e3779b9;
  for (const part of key) {
    if (!Number.isSafeInteger(part)) throw new RangeError(`createRng: key parts must be safe integers, got ${part}`);
    const low = part >>> 0;
    const high = Math.floor(part / 2 ** 32) >>> 0;
    h = mix32(h ^ low) + 0x632be5ab;
    h = mix32(h ^ high) + 0x9e3779b9;
  }
  for (let i = 0; i < 4; i++) {
    h = mix32(h + 0x6d2b79f5 * (i + 1));
    state[i] = h;
  }
  if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 1;  // xoshiro's one bad state
  return state;
}

/** A stream determined by `key` alone: createRng(seed, epoch, index). */
export function createRng(...key: number[]): Rng {
  const s = seedState(key);
  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;   // xoshiro128**
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  };
  const next = (): number => nextU32() / 2 ** 32;
  let spare: number | null = null;
  const normal = (): number => {
    if (spare !== null) { const z = spare; spare = null; return z; }
    let u = 0;
    while (u === 0) u = next();
    const v = next();
    const radius = Math.sqrt(-2 * Math.log(u));
    spare = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  };
  const gamma = (shape: number): number => {
    if (shape < 1) return gamma(shape + 1) * next() ** (1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do { x = normal(); v = 1 + c * x; } while (v <= 0);
      v = v * v * v;
      const u = next();
      if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    uniform: (low, high) => low + (high - low) * next(),
    normal,
    beta: (alpha) => { const a = gamma(alpha); const b = gamma(alpha); return a / (a + b); },
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A permutation of 0..n−1 (Fisher–Yates) determined by `key`: the order of an epoch. */
export function permutation(n: number, ...key: number[]): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const rng = createRng(...key);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}
