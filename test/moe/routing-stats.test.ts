// Routing statistics against a plain loop over the recorded decisions: seeded random decisions over several layers
// (top-1 to top-4, experts never chosen, a layer that sees nothing), every field; closed-form cases (even load, all
// tokens on the same pair); the JSON and the table; and `moets generate --routing-stats(-json)` end to end on a tiny
// checkpoint, whose counts must equal those of the decisions an in-process run of the same generation reports.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { generate } from '../../src/generate/generate.ts';
import { ModelConfig } from '../../src/io/config.ts';
import { loadModel } from '../../src/models/load.ts';
import { architectureOf } from '../../src/models/registry.ts';
import type { RoutingDecision } from '../../src/moe/observer.ts';
import {
  formatRoutingStatsTable, moeLayersOf, RoutingStats, routingStatsJson, type LayerRoutingStats, type MoeLayerInfo,
} from '../../src/moe/routing-stats.ts';
import { assertUserError, runCli } from '../cli/run-cli.ts';
import { Rng } from '../util/random.ts';
import { TINY_CONFIGS, writeTinyCheckpoint } from '../util/tiny-checkpoint.ts';

const work = mkdtempSync(join(tmpdir(), 'moets-routing-stats-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The statistics of one layer, computed by plain loops over the decisions, straight from the definitions. */
function plainStats(info: MoeLayerInfo, decisions: RoutingDecision[]): LayerRoutingStats {
  const { numExperts: E, topK: K } = info;
  const counts: number[] = new Array<number>(E).fill(0);
  const mass: number[] = new Array<number>(E).fill(0);
  const co = Array.from({ length: E }, () => new Array<number>(E).fill(0));
  let tokens = 0;
  let entropySum = 0;
  for (const d of decisions.filter((x) => x.layer === info.layer)) {
    for (let t = 0; t < d.positions.length; t++) {
      tokens++;
      const chosen = Array.from(d.experts.slice(t * K, (t + 1) * K));
      const weights = Array.from(d.weights.slice(t * K, (t + 1) * K));
      chosen.forEach((e, j) => { counts[e]! += 1; mass[e]! += weights[j]!; });
      for (const a of chosen) for (const b of chosen) co[a]![b]! += 1; // a = b: the diagonal (experts are distinct)
      const sum = weights.reduce((s, w) => s + w, 0);
      entropySum += -weights.reduce((h, w) => h + (w / sum) * Math.log(w / sum), 0) / Math.log(K);
    }
  }
  const total = counts.reduce((s, c) => s + c, 0);
  const mean = total / E;
  const shares = counts.map((c) => c / total);
  return {
    ...info,
    tokens,
    assignments: total,
    maxOverMeanLoad: total ? Math.max(...counts) / mean : null,
    loadCv: total ? Math.sqrt(counts.reduce((s, c) => s + (c - mean) ** 2, 0) / E) / mean : null,
    loadEntropy: total ? -shares.filter((s) => s > 0).reduce((h, s) => h + s * Math.log(s), 0) / Math.log(E) : null,
    weightEntropy: tokens && K > 1 ? entropySum / tokens : null,
    unusedExperts: counts.filter((c) => c === 0).length,
    experts: {
      tokens: counts,
      share: total ? shares : counts.map(() => null),
      weightMass: mass,
      meanWeight: counts.map((c, e) => (c ? mass[e]! / c : null)),
    },
    coOccurrence: co,
  };
}

/** Deep equality with floats compared to a relative 1e-12 (sums are taken in different orders). */
function assertClose(actual: unknown, expected: unknown, path = 'stats'): void {
  if (typeof expected === 'number' && typeof actual === 'number' && !Number.isInteger(expected)) {
    assert.ok(Math.abs(actual - expected) <= 1e-12 * Math.max(1, Math.abs(expected)), `${path}: ${actual} ≠ ${expected}`);
  } else if (expected !== null && typeof expected === 'object') {
    assert.ok(actual !== null && typeof actual === 'object', `${path}: ${String(actual)} is not an object`);
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${path}: keys`);
    for (const key of Object.keys(expected)) {
      assertClose((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key], `${path}.${key}`);
    }
  } else {
    assert.equal(actual, expected, path);
  }
}

/** k distinct experts drawn from `pool`, with positive weights (scaled, as DeepSeek's routed scaling factor does). */
function randomDecision(rng: Rng, layer: number, pool: number[], K: number, T: number, start: number): RoutingDecision {
  const experts = new Int32Array(T * K);
  const weights = new Float32Array(T * K);
  for (let t = 0; t < T; t++) {
    const left = [...pool];
    for (let j = 0; j < K; j++) {
      experts[t * K + j] = left.splice(rng.int(left.length), 1)[0]!;
      weights[t * K + j] = 0.05 + 2.5 * rng.next();
    }
  }
  return { layer, positions: Int32Array.from({ length: T }, (_, i) => start + i), experts, weights, topK: K };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('routing statistics', () => {
  test('every field equals a plain loop over seeded random decisions', () => {
    const layers: MoeLayerInfo[] = [
      { layer: 1, numExperts: 8, topK: 2 },
      { layer: 3, numExperts: 5, topK: 1 },
      { layer: 4, numExperts: 16, topK: 4 }, // experts 12..15 are never chosen
      { layer: 6, numExperts: 4, topK: 2 }, // sees no token at all
    ];
    const pools: Record<number, number[]> = { 1: range(8), 3: range(5), 4: range(12) };
    const rng = new Rng(20240);
    const stats = new RoutingStats(layers);
    const recorded: RoutingDecision[] = [];
    let position = 0;
    for (let call = 0; call < 12; call++) {
      const T = 1 + rng.int(9);
      for (const info of layers.slice(0, 3)) {
        const d = randomDecision(rng, info.layer, pools[info.layer]!, info.topK, T, position);
        stats.onRouting(d);
        recorded.push(d);
      }
      position += T;
    }
    const report = stats.report();
    assert.deepEqual(report.layers.map((l) => l.layer), [1, 3, 4, 6]);
    for (const [i, info] of layers.entries()) assertClose(report.layers[i], plainStats(info, recorded), `layer ${info.layer}`);
    const [, topOne, sparse, idle] = report.layers;
    assert.equal(topOne!.weightEntropy, null, 'top-1: one weight per token has no entropy');
    assert.equal(sparse!.unusedExperts, 4);
    assert.deepEqual(sparse!.experts.tokens.slice(12), [0, 0, 0, 0]);
    assert.deepEqual(sparse!.experts.meanWeight.slice(12), [null, null, null, null]);
    assert.equal(idle!.tokens, 0);
    assert.equal(idle!.maxOverMeanLoad, null);
    assert.equal(sparse!.tokens, position);
    assert.equal(sparse!.assignments, position * 4);
  });

  test('closed forms: an even load, and every token on the same pair of experts', () => {
    // E = 4, K = 2. Even: tokens alternate (0,1) and (2,3) with equal weights → every ratio at its ideal.
    const even = new RoutingStats([{ layer: 0, numExperts: 4, topK: 2 }]);
    even.onRouting({ layer: 0, positions: Int32Array.of(0, 1), experts: Int32Array.of(0, 1, 3, 2), weights: Float32Array.of(0.5, 0.5, 0.5, 0.5), topK: 2 });
    const e = even.report().layers[0]!;
    assert.deepEqual([e.maxOverMeanLoad, e.loadCv, e.loadEntropy, e.weightEntropy], [1, 0, 1, 1]);
    assert.deepEqual(e.coOccurrence, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]);
    // Skewed: 3 tokens all on experts 1 and 2, weights 0.75/0.25: loads [0, 3, 3, 0], mean 1.5.
    const skewed = new RoutingStats([{ layer: 0, numExperts: 4, topK: 2 }]);
    skewed.onRouting({ layer: 0, positions: Int32Array.of(0, 1, 2), experts: Int32Array.of(1, 2, 2, 1, 1, 2), weights: Float32Array.of(0.75, 0.25, 0.75, 0.25, 0.75, 0.25), topK: 2 });
    const s = skewed.report().layers[0]!;
    assert.equal(s.maxOverMeanLoad, 2); // E / K
    assert.equal(s.loadCv, 1);
    assertClose(s.loadEntropy, Math.log(2) / Math.log(4));
    assertClose(s.weightEntropy, -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25)) / Math.log(2));
    assert.deepEqual(s.experts.weightMass, [0, 0.75 + 0.25 + 0.75, 0.25 + 0.75 + 0.25, 0]);
    assert.deepEqual(s.coOccurrence[1], [0, 3, 3, 0]);
    assert.equal(s.unusedExperts, 2);
  });

  test('a decision from an undeclared layer, an expert out of range or a different top-k is a bug, reported as such', () => {
    const stats = new RoutingStats([{ layer: 2, numExperts: 3, topK: 1 }]);
    const decision = (layer: number, expert: number, topK = 1) =>
      ({ layer, positions: Int32Array.of(0), experts: Int32Array.of(expert, ...(topK > 1 ? [0] : [])), weights: Float32Array.of(1, ...(topK > 1 ? [0] : [])), topK });
    assert.throws(() => stats.onRouting(decision(1, 0)), /internal error: routing from layer 1, which was not declared/);
    assert.throws(() => stats.onRouting(decision(2, 3)), /internal error: layer 2 routed a token to expert 3, outside 0\.\.2/);
    assert.throws(() => stats.onRouting(decision(2, 1, 2)), /internal error: layer 2 reported top-2 routing, its spec says top-1/);
  });

  test('moeLayersOf lists the sparse layers of a spec with their experts and top-k', () => {
    const config = TINY_CONFIGS['qwen2_moe']!; // 3 layers, layer 1 dense (mlp_only_layers), 6 experts, top-3
    const spec = architectureOf(ModelConfig.fromObject('config.json', config));
    assert.deepEqual(moeLayersOf(spec), [{ layer: 0, numExperts: 6, topK: 3 }, { layer: 2, numExperts: 6, topK: 3 }]);
  });

  test('JSON reads back as the report after the run fields; the table has a row per layer with its numbers', () => {
    const rng = new Rng(7);
    const stats = new RoutingStats([{ layer: 0, numExperts: 6, topK: 2 }, { layer: 5, numExperts: 3, topK: 1 }]);
    stats.onRouting(randomDecision(rng, 0, range(6), 2, 9, 0));
    stats.onRouting(randomDecision(rng, 5, range(3), 1, 9, 0));
    const report = stats.report();
    const json = routingStatsJson(report, { modelType: 'test', promptTokens: 9 });
    assert.deepEqual(JSON.parse(json), { modelType: 'test', promptTokens: 9, ...JSON.parse(JSON.stringify(report)) });
    assert.match(json, /"coOccurrence": \[\n\s+\[\d+(, \d+){5}\],/, 'each matrix row on one line');
    const lines = formatRoutingStatsTable(report).split('\n');
    assert.match(lines[0]!, /routing statistics \(2 MoE layers\)/);
    assert.deepEqual(lines[1]!.split(/\s{2,}/).slice(0, 9), ['layer', 'experts', 'top-k', 'tokens', 'max/mean', 'CV', 'load H', 'weight H', 'unused']);
    for (const [i, l] of report.layers.entries()) {
      const cells = lines[2 + i]!.trim().split(/\s+/);
      const expected = [l.layer, l.numExperts, l.topK, l.tokens].map(String)
        .concat([l.maxOverMeanLoad!.toFixed(2), l.loadCv!.toFixed(2), l.loadEntropy!.toFixed(3), l.weightEntropy?.toFixed(3) ?? '-', String(l.unusedExperts)]);
      assert.deepEqual(cells.slice(0, 9), expected);
      const busiest = l.experts.tokens.indexOf(Math.max(...l.experts.tokens));
      assert.equal(cells[9], `e${busiest}`);
    }
    assert.equal(formatRoutingStatsTable({ layers: [] }), 'routing statistics: the model has no MoE layers\n');
  });
});

describe('moets generate --routing-stats', { concurrency: 2 }, () => {
  const modelDir = writeTinyCheckpoint(TINY_CONFIGS['qwen2_moe']!, 'fused', 3, join(work, 'qwen2-moe'));
  const prompt = [5, 17, 33, 8, 61, 4, 90];
  const args = ['generate', modelDir, '--ids', prompt.join(','), '--max-new-tokens', '6', '--temperature', '0', '--format', 'ids'];

  test('prints the table on stderr, keeps stdout to the ids, and writes JSON counting every routed token', async () => {
    const out = join(work, 'routing.json');
    const [plain, withStats] = await Promise.all([runCli(args), runCli([...args, '--routing-stats', '--routing-stats-json', out])]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal(withStats.status, 0, withStats.stderr);
    assert.equal(withStats.stdout, plain.stdout, 'stdout is the same ids line with or without statistics');
    const newIds = plain.stdout.trim().split(',').map(Number);

    // The same greedy generation in-process, its decisions recorded and counted by the plain loop.
    const lm = await loadModel(modelDir);
    const recorded: RoutingDecision[] = [];
    lm.setRoutingObserver({ onRouting: (d) => recorded.push({ ...d, experts: d.experts.slice(), weights: d.weights.slice() }) });
    const result = await generate(lm, prompt, { maxNewTokens: 6, temperature: 0 });
    assert.deepEqual(result.tokens, newIds);

    const json = JSON.parse(readFileSync(out, 'utf8')) as { promptTokens: number; newTokens: number; layers: LayerRoutingStats[] };
    assert.equal(json.promptTokens, prompt.length);
    assert.equal(json.newTokens, newIds.length);
    assert.deepEqual(json.layers.map((l) => l.layer), [0, 2], 'the two sparse layers; layer 1 is dense');
    // Every prompt token and every new token but the last (which ends generation unread) passes each sparse layer.
    const routed = prompt.length + newIds.length - 1;
    for (const layer of json.layers) {
      assert.equal(layer.tokens, routed);
      assert.equal(layer.assignments, routed * 3);
      assert.equal(layer.experts.tokens.reduce((s, c) => s + c, 0), routed * 3);
      assertClose(JSON.parse(JSON.stringify(layer)), JSON.parse(JSON.stringify(plainStats(layer, recorded))), `layer ${layer.layer}`);
    }
    const table = withStats.stderr.split('\n');
    assert.match(table[0]!, /^routing statistics \(2 MoE layers\)$/);
    assert.match(table[2]!, new RegExp(`^\\s*0\\s+6\\s+3\\s+${routed}\\s`));
    assert.match(table[3]!, new RegExp(`^\\s*2\\s+6\\s+3\\s+${routed}\\s`));
    assert.deepEqual(readdirSync(work).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
  });

  test('--routing-stats-json into a missing directory fails before the model loads', async () => {
    const r = await runCli([...args, '--routing-stats-json', join(work, 'missing', 'r.json')]);
    assertUserError(r, 2, /--routing-stats-json '.*r\.json': directory '.*missing' does not exist; create it/);
    assert.equal(existsSync(join(work, 'missing')), false);
  });
});
