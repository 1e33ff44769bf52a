// Sampling: the filtered distribution against a plain transcription of transformers' logits warpers
// (TemperatureLogitsWarper → TopKLogitsWarper → TopPLogitsWarper → softmax), empirical frequencies of
// seeded draws against it, greedy argmax, seeding, and option validation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MoetsError } from '../../src/core/errors.ts';
import {
  SeededRandom, argmax, sampleToken, samplingDistribution, validateSamplingOptions, type SamplingOptions,
} from '../../src/generate/sampling.ts';

/** transformers' warpers written out over plain arrays: returns the probability of every id (0 = filtered). */
function referenceProbabilities(logits: number[], opts: SamplingOptions): number[] {
  const V = logits.length;
  let scores = logits.map((x) => x / opts.temperature);
  if (opts.topK > 0) {
    const kth = [...scores].sort((a, b) => b - a)[Math.min(opts.topK, V) - 1]!;
    scores = scores.map((s) => (s < kth ? -Infinity : s));
  }
  const softmax = (xs: number[]): number[] => {
    const max = Math.max(...xs);
    const e = xs.map((x) => Math.exp(x - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / sum);
  };
  if (opts.topP < 1) {
    // Ascending order; remove every token whose cumulative probability (from the bottom) is ≤ 1 - top_p,
    // but never the most probable one.
    const probs = softmax(scores);
    const ascending = [...probs.keys()].sort((a, b) => probs[a]! - probs[b]! || b - a);
    let cumulative = 0;
    ascending.forEach((id, rank) => {
      cumulative += probs[id]!;
      if (cumulative <= 1 - opts.topP && rank < V - 1) scores[id] = -Infinity;
    });
  }
  return softmax(scores);
}

function randomLogits(rng: SeededRandom, V: number, spread: number): Float32Array {
  return Float32Array.from({ length: V }, () => (rng.next() - 0.5) * spread);
}

test('the filtered distribution equals the transformers warpers on random logits', () => {
  const rng = new SeededRandom(11);
  const configs: SamplingOptions[] = [
    { temperature: 1, topK: 0, topP: 1 },
    { temperature: 0.7, topK: 5, topP: 1 },
    { temperature: 1.3, topK: 0, topP: 0.8 },
    { temperature: 0.5, topK: 20, topP: 0.9 },
    { temperature: 2, topK: 1, topP: 0.5 },
    { temperature: 1, topK: 200, topP: 0.3 },
  ];
  for (const opts of configs) {
    for (const V of [7, 33, 127]) {
      const logits = randomLogits(rng, V, 8);
      const expected = referenceProbabilities(Array.from(logits), opts);
      const { ids, probs } = samplingDistribution(logits, opts);
      const got = new Array<number>(V).fill(0);
      ids.forEach((id, j) => { got[id] = probs[j]!; });
      for (let i = 0; i < V; i++) {
        assert.ok(Math.abs(got[i]! - expected[i]!) < 1e-12, `V=${V} ${JSON.stringify(opts)} id ${i}: ${got[i]} vs ${expected[i]}`);
        assert.equal(ids.includes(i), expected[i]! > 0, `id ${i} kept`);
      }
    }
  }
});

test('top-k keeps ties with the k-th logit; top-p keeps the smallest nucleus reaching p (ties: lowest ids)', () => {
  const tied = samplingDistribution(Float32Array.of(3, 1, 1, 0), { temperature: 1, topK: 2, topP: 1 });
  assert.deepEqual(Array.from(tied.ids), [0, 1, 2]);
  // probabilities 0.5, 0.2, 0.15, 0.1, 0.05: p = 0.6 needs {0, 1}; p = 0.75 needs {0, 1, 2}; p = 0.1 keeps the top one.
  const logits = Float32Array.from([0.5, 0.2, 0.15, 0.1, 0.05], Math.log);
  assert.deepEqual(Array.from(samplingDistribution(logits, { temperature: 1, topK: 0, topP: 0.6 }).ids), [0, 1]);
  assert.deepEqual(Array.from(samplingDistribution(logits, { temperature: 1, topK: 0, topP: 0.75 }).ids), [0, 1, 2]);
  assert.deepEqual(Array.from(samplingDistribution(logits, { temperature: 1, topK: 0, topP: 0.1 }).ids), [0]);
  const fourTied = Float32Array.of(1, 1, 1, 1);
  assert.deepEqual(Array.from(samplingDistribution(fourTied, { temperature: 1, topK: 0, topP: 0.5 }).ids), [0, 1]);
  const nucleus = samplingDistribution(logits, { temperature: 1, topK: 0, topP: 0.75 });
  for (const [j, p] of [0.5, 0.2, 0.15].entries()) assert.ok(Math.abs(nucleus.probs[j]! - p / 0.85) < 1e-6);
});

test('20,000 seeded draws match the filtered probabilities and never pick a filtered token', () => {
  // V = 8; the binomial standard deviation of a frequency is ≤ sqrt(0.25 / 20000) ≈ 0.0035: tolerance 0.015 (> 4σ).
  const logits = Float32Array.of(2.0, 1.5, 1.4, 0.3, 0.2, -0.5, -1.0, 1.0);
  const draws = 20_000;
  for (const opts of [
    { temperature: 1, topK: 0, topP: 1 },
    { temperature: 0.8, topK: 4, topP: 1 },
    { temperature: 1.5, topK: 0, topP: 0.7 },
    { temperature: 1.2, topK: 5, topP: 0.8 },
  ]) {
    const expected = referenceProbabilities(Array.from(logits), opts);
    const counts = new Array<number>(logits.length).fill(0);
    const rng = new SeededRandom(2024);
    for (let n = 0; n < draws; n++) counts[sampleToken(logits, opts, rng)]!++;
    counts.forEach((count, id) => {
      if (expected[id] === 0) assert.equal(count, 0, `filtered id ${id} drawn with ${JSON.stringify(opts)}`);
      assert.ok(Math.abs(count / draws - expected[id]!) < 0.015,
        `id ${id}: frequency ${count / draws} vs probability ${expected[id]} with ${JSON.stringify(opts)}`);
    });
  }
});

test('the same seed gives the same tokens; another seed other tokens', () => {
  const logits = randomLogits(new SeededRandom(5), 50, 3);
  const opts = { temperature: 1, topK: 0, topP: 1 };
  const run = (seed: number): number[] => {
    const rng = new SeededRandom(seed);
    return Array.from({ length: 64 }, () => sampleToken(logits, opts, rng));
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
  assert.notDeepEqual(run(7), run(7 + 2 ** 32), 'the high bits of a seed matter');
});

test('SeededRandom is uniform on [0, 1)', () => {
  const rng = new SeededRandom(1);
  const bins = new Array<number>(10).fill(0);
  for (let n = 0; n < 100_000; n++) {
    const u = rng.next();
    assert.ok(u >= 0 && u < 1);
    bins[Math.floor(u * 10)]!++;
  }
  for (const b of bins) assert.ok(Math.abs(b / 100_000 - 0.1) < 0.005, `bin frequency ${b / 100_000}`);
});

test('temperature 0 is argmax with ties to the lowest id; a tiny temperature samples the same token', () => {
  const rng = new SeededRandom(3);
  for (let trial = 0; trial < 20; trial++) {
    const logits = randomLogits(rng, 31, 10);
    let best = 0;
    for (let i = 0; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    assert.equal(sampleToken(logits, { temperature: 0, topK: 0, topP: 1 }, rng), best);
    assert.equal(sampleToken(logits, { temperature: 1e-6, topK: 0, topP: 0.9 }, rng), best);
  }
  assert.equal(argmax(Float32Array.of(1, 4, 2, 4)), 1);
  assert.equal(argmax(Float32Array.of(NaN, -1, -3)), 1);
});

test('out-of-range sampling options are usage errors', () => {
  const bad: SamplingOptions[] = [
    { temperature: -0.1, topK: 0, topP: 1 },
    { temperature: NaN, topK: 0, topP: 1 },
    { temperature: 1, topK: -1, topP: 1 },
    { temperature: 1, topK: 2.5, topP: 1 },
    { temperature: 1, topK: 0, topP: 0 },
    { temperature: 1, topK: 0, topP: 1.01 },
  ];
  for (const opts of bad) {
    assert.throws(() => validateSamplingOptions(opts), (e: unknown) => e instanceof MoetsError && e.kind === 'usage');
  }
  assert.doesNotThrow(() => validateSamplingOptions({ temperature: 0, topK: 0, topP: 1 }));
  assert.throws(() => new SeededRandom(1.5), MoetsError);
});
