/**
 * A digest of a set of tensors, stored in a checkpoint's metadata and verified when it is read
 * back, so flipped or truncated tensor bytes are reported instead of resumed from silently.
 *
 * SHA-256 over, for each tensor in name order: its name, dtype and shape (as one JSON line) and
 * its raw little-endian bytes. Independent of the file layout (offsets, header padding).
 */
import { createHash } from 'node:crypto';
import type { RawTensor } from './raw-tensor.js';

/** The metadata key the digest is stored under. */
export const DIGEST_KEY = 'vicinity.sha256';

/** Hex SHA-256 of the tensors (see the file header). */
export function tensorsDigest(tensors: ReadonlyMap<string, RawTensor>): string {
  const hash = createHash('sha256');
  for (const name of [...tensors.keys()].sort()) {
    const t = tensors.get(name)!;
    hash.update(`${JSON.stringify([name, t.dtype, t.shape])}\n`);
    hash.update(t.data);
  }
  return hash.digest('hex');
}
