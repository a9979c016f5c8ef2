/**
 * Test helpers for the transforms: an Rng that replays given numbers (so a test can force each
 * random choice and check the arithmetic after it), and a deterministic pixel pattern that the
 * Pillow fixtures were generated from.
 */

import type { DecodedImage } from '../../../src/data/dataset.js';
import type { Rng } from '../../../src/data/rng.js';

/**
 * An Rng whose next() returns `uniforms` in order, normal() `normals` in order and beta() `betas`;
 * int/uniform derive from next() as the real Rng does. Running out throws, so a test also checks
 * how many draws the code under test makes.
 */
export function scriptedRng(script: { uniforms?: number[]; normals?: number[]; betas?: number[] }): Rng & { left(): number } {
  const uniforms = [...(script.uniforms ?? [])];
  const normals = [...(script.normals ?? [])];
  const betas = [...(script.betas ?? [])];
  const take = (queue: number[], what: string): number => {
    const v = queue.shift();
    if (v === undefined) throw new Error(`scriptedRng: no ${what} left`);
    return v;
  };
  const next = (): number => take(uniforms, 'uniform');
  return {
    next,
    int: (n) => Math.floor(next() * n),
    uniform: (low, high) => low + (high - low) * next(),
    normal: () => take(normals, 'normal'),
    beta: () => take(betas, 'beta'),
    left: () => uniforms.length + normals.length + betas.length,
  };
}

/** The fixtures' input: value i = (73·i + 11·(i² mod 29) + 7) mod 256 over the flat HWC index. */
export function patternImage(height: number, width: number, channels: 1 | 3): DecodedImage {
  const data = new Uint8Array(height * width * channels);
  for (let i = 0; i < data.length; i++) data[i] = (i * 73 + ((i * i) % 29) * 11 + 7) % 256;
  return { data, height, width, channels };
}

/** Bytes from a hex string (how the Pillow fixtures are stored). */
export function hexBytes(hex: string): number[] {
  return Array.from({ length: hex.length / 2 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}
