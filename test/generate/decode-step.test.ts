// Steps through DecodeStepper on the CPU backend (where a captured step replays by running the step again, so this
// is the code path CUDA graphs take, checked without a GPU): decoding through captured steps equals plain steps;
// a batch of 2 sequences stepped in lockstep equals each sequence run alone, for every family; captured steps are
// dropped when the cache grows; a routing observer and MOETS_CUDA_GRAPHS=0 keep steps plain.
//
// Legend: B = sequences, T = tokens per sequence, V = vocabulary.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecodeStepper } from '../../src/generate/decode-step.ts';
import type { CausalLM } from '../../src/models/model.ts';
import { loadModel } from '../../src/models/load.ts';
import { relativeError } from '../util/compare.ts';
import { Rng } from '../util/random.ts';
import { TINY_CONFIGS, writeTinyCheckpoint } from '../util/tiny-checkpoint.ts';

/** Prefill `prompt` (B × P ids) then feed `steps` (each B ids), all through one stepper; every step's logits. */
async function decode(model: CausalLM, prompt: Int32Array, steps: Int32Array[], opts: { batch: number; capacity?: number; graphs: boolean }) {
  const cache = model.newCache({ batch: opts.batch, ...(opts.capacity !== undefined ? { capacity: opts.capacity } : {}) });
  const stepper = new DecodeStepper(model, cache, { graphs: opts.graphs });
  const logits = [await stepper.step(prompt, 1)];
  for (const ids of steps) logits.push(await stepper.step(ids, 1));
  stepper.dispose();
  return { logits, counts: stepper.counts, cache };
}

function randomIds(rng: Rng, n: number, V: number): Int32Array {
  return Int32Array.from({ length: n }, () => rng.int(V));
}

describe('DecodeStepper', () => {
  for (const [family, config] of Object.entries(TINY_CONFIGS)) {
    it(`${family}: 2 sequences in lockstep through captured steps equal each sequence run alone, plainly`, async () => {
      const model = await loadModel(writeTinyCheckpoint(config, 'fused', 5));
      const V = model.vocabSize;
      const rng = new Rng(41);
      const [B, P, steps] = [2, 6, 5];
      const prompts = [randomIds(rng, P, V), randomIds(rng, P, V)];
      const next = Array.from({ length: steps }, () => [randomIds(rng, 1, V), randomIds(rng, 1, V)]);
      const alone: Float32Array[][] = [];
      for (let s = 0; s < B; s++) {
        const run = await decode(model, prompts[s]!, next.map((ids) => ids[s]!), { batch: 1, graphs: false });
        assert.deepEqual(run.counts, { replayed: 0, plain: steps + 1, captures: 0 });
        alone.push(run.logits);
      }
      const together = await decode(model, Int32Array.from([...prompts[0]!, ...prompts[1]!]),
        next.map((ids) => Int32Array.from([ids[0]![0]!, ids[1]![0]!])), { batch: B, capacity: P + steps, graphs: true });
      // Prefill and the first decode step run plainly; the second is captured; every decode step after replays.
      assert.deepEqual(together.counts, { replayed: steps - 1, plain: 2, captures: 1 });
      assert.equal(together.cache.length, P + steps);
      together.logits.forEach((rows, n) => {
        assert.equal(rows.length, B * V);
        for (let s = 0; s < B; s++) {
          const err = relativeError(rows.subarray(s * V, (s + 1) * V), alone[s]![n]!);
          assert.ok(err < 1e-5, `${family}, step ${n}, sequence ${s}: relative error ${err}`);
        }
      });
    });
  }

  it('captured steps give bitwise the logits of plain steps, and are captured again after the cache grows', async () => {
    const model = await loadModel(writeTinyCheckpoint(TINY_CONFIGS['qwen3_moe']!, 'hub', 9));
    const rng = new Rng(43);
    const prompt = randomIds(rng, 5, model.vocabSize);
    const steps = Array.from({ length: 20 }, () => randomIds(rng, 1, model.vocabSize));
    const plain = await decode(model, prompt, steps, { batch: 1, graphs: false });
    // No capacity: the cache starts at 16 positions and grows at position 16, which drops the captured step.
    const replayed = await decode(model, prompt, steps, { batch: 1, graphs: true });
    assert.deepEqual(replayed.counts, { replayed: 18, plain: 3, captures: 2 });
    assert.equal(replayed.cache.storageVersion, 2);
    replayed.logits.forEach((row, n) => assert.deepEqual(row, plain.logits[n], `step ${n}`));
  });

  it('lastTokens keeps the last rows of each sequence', async () => {
    const model = await loadModel(writeTinyCheckpoint(TINY_CONFIGS['mixtral']!, 'fused', 2));
    const V = model.vocabSize;
    const rng = new Rng(44);
    const [a, b] = [randomIds(rng, 7, V), randomIds(rng, 7, V)];
    const full = (await (await model.forward(Int32Array.from([...a, ...b]), model.newCache({ batch: 2 }))).read()) as Float32Array;
    const last = await new DecodeStepper(model, model.newCache({ batch: 2 })).step(Int32Array.from([...a, ...b]), 3);
    assert.deepEqual(last, Float32Array.from([...full.subarray(4 * V, 7 * V), ...full.subarray(11 * V, 14 * V)]));
  });

  it('a routing observer and MOETS_CUDA_GRAPHS=0 keep every step plain', async () => {
    const model = await loadModel(writeTinyCheckpoint(TINY_CONFIGS['olmoe']!, 'fused', 3));
    const rng = new Rng(45);
    const prompt = randomIds(rng, 4, model.vocabSize);
    const steps = Array.from({ length: 4 }, () => randomIds(rng, 1, model.vocabSize));
    const seen: number[] = [];
    model.setRoutingObserver({ onRouting: (d) => seen.push(...d.positions) });
    const observed = await decode(model, prompt, steps, { batch: 1, capacity: 8, graphs: true });
    model.setRoutingObserver(undefined);
    assert.deepEqual(observed.counts, { replayed: 0, plain: 5, captures: 0 });
    const layers = seen.length / 8; // 8 positions, reported once per MoE layer
    assert.deepEqual(seen.slice(0, 4 * layers).sort(), [0, 1, 2, 3].flatMap((p) => new Array(layers).fill(p)).sort());

    const saved = process.env['MOETS_CUDA_GRAPHS'];
    process.env['MOETS_CUDA_GRAPHS'] = '0';
    try {
      const stepper = new DecodeStepper(model, model.newCache({ capacity: 8 }));
      for (const ids of [prompt, ...steps]) await stepper.step(ids);
      assert.deepEqual(stepper.counts, { replayed: 0, plain: 5, captures: 0 });
    } finally {
      if (saved === undefined) delete process.env['MOETS_CUDA_GRAPHS'];
      else process.env['MOETS_CUDA_GRAPHS'] = saved;
    }
  });
});
