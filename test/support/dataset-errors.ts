/** Asserting that dataset code fails the way users are promised: a DatasetError naming the problem. */
import assert from 'node:assert/strict';
import { DatasetError } from '../../src/data/errors.js';

/** Awaits `promise`, asserts it rejects with a DatasetError matching every pattern, returns it. */
export async function rejectsDatasetError(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<DatasetError> {
  let caught: DatasetError | undefined;
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof DatasetError, `expected a DatasetError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    caught = e;
    return true;
  });
  return caught!;
}
