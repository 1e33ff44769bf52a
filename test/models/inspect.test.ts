// inspect's parameter counts against the tensors actually stored in every fixture checkpoint, and the active
// count against the plain formula: total − (E − K) · 3 · D · F for each sparse layer.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspectModel } from '../../src/models/inspect.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const dirs = readdirSync(FIXTURES).filter((d) => existsSync(join(FIXTURES, d, 'config.json')));

describe('inspect', () => {
  for (const name of dirs) {
    it(`${name}: total = stored parameters, active and FLOPs by the formula`, () => {
      const r = inspectModel(join(FIXTURES, name));
      const config = JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));
      assert.equal(r.parameters.total, r.parameters.stored);
      const e = r.experts!;
      const D = r.hiddenSize;
      const idle = r.sparseLayers * (e.count - e.topK) * 3 * D * e.intermediateSize;
      assert.equal(r.parameters.activePerToken, r.parameters.total - idle);
      const lookup = config.tie_word_embeddings ? 0 : r.vocabSize * D;
      assert.equal(r.flopsPerToken, 2 * (r.parameters.activePerToken - lookup));
      assert.ok(r.diskBytes > 4 * r.parameters.stored * (name.includes('16') ? 0.5 : 1) * 0.99);
    });
  }
});
