/**
 * HaloNet H4–H7 MACs at their own resolutions (384–600 px), counted for real: the slowest
 * checks of the model zoo (5–16 s and 2–8 GB each on 2 CPU cores), kept in their own file so the
 * rest of the HaloNet tests stay quick.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { countMacs } from '../../src/analysis/macs.js';
import { haloNetModels } from '../../src/models/entries/halonet.js';

// model-specs.md, HaloNet table: GMACs at s.
const SPEC_GMACS: Record<string, number> = { halonet_h4: 11.998, halonet_h5: 32.246, halonet_h6: 52.787, halonet_h7: 112.983 };

for (const [name, gmacs] of Object.entries(SPEC_GMACS)) {
  test(`${name}: MACs at its resolution equal the entry and are within 1% of model-specs.md`, () => {
    const entry = haloNetModels[name];
    const net = entry.build({ numClasses: entry.numClasses, inChannels: entry.inChannels, dropPathRate: 0, inputSize: entry.inputSize });
    try {
      const { total } = countMacs(net, [1, entry.inChannels, entry.inputSize, entry.inputSize]);
      assert.equal(total, entry.macs);
      assert.ok(Math.abs(total / 1e9 / gmacs - 1) < 0.01, `${total} MACs vs ${gmacs} G`);
    } finally {
      net.dispose();
    }
  });
}
