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
      // GPT-OSS experts also carry biases: 2F on gate_up_proj, D on down_proj.
      const expertBiases = config.model_type === 'gpt_oss' ? 2 * e.intermediateSize + D : 0;
      const idle = r.sparseLayers * (e.count - e.topK) * (3 * D * e.intermediateSize + expertBiases);
      assert.equal(r.parameters.activePerToken, r.parameters.total - idle);
      const lookup = config.tie_word_embeddings ? 0 : r.vocabSize * D;
      assert.equal(r.flopsPerToken, 2 * (r.parameters.activePerToken - lookup));
      // MXFP4 experts take 4.25 bits a value, so such a checkpoint needs well under 4 bytes a parameter.
      const bytesPerValue = name.includes('mxfp4') ? 0.5 : name.includes('16') ? 2 : 4;
      assert.ok(r.diskBytes > bytesPerValue * r.parameters.stored * 0.99);
    });
  }
});
