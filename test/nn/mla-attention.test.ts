// Multi-head latent attention against a plain float64 loop written from transformers' DeepseekV3Attention
// (q LoRA or q_proj, kv latent + shared RoPE key, kv_b expansion, RoPE as apply_rotary_pos_emb_interleave /
// rotate_half lay it out), run in chunks through the cache, one sequence and two in lockstep; and the cache holds
// the latent and k_pe, not K/V.
//
// Legend: B = sequences, T = tokens, D = hidden, H = heads, R = kv_lora_rank, Rq = q_lora_rank, Dn/Dr = nope/rope head dims,
// Dv = value head dim.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.ts';
import type { AttentionSpec, MlaSpec } from '../../src/models/spec.ts';
import { KVCache } from '../../src/nn/kv-cache.ts';
import { MlaAttention, type MlaWeights } from '../../src/nn/mla-attention.ts';
import { relativeError } from '../util/compare.ts';
import { Rng } from '../util/random.ts';

type Mat = { rows: number; cols: number; v: Float32Array };

const b = new CpuBackend();

function linearRef(x: number[][], w: Mat, bias?: Float32Array): number[][] {
  return x.map((row) => Array.from({ length: w.rows }, (_, o) => {
    let sum = bias ? bias[o]! : 0;
    for (let i = 0; i < w.cols; i++) sum += row[i]! * w.v[o * w.cols + i]!;
    return sum;
  }));
}

function rmsNormRef(x: number[][], w: Float32Array): number[][] {
  return x.map((row) => {
    const inv = 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / row.length + 1e-6);
    return row.map((v, i) => v * inv * w[i]!);
  });
}

/** transformers' RoPE on one head's rope dims: interleave → (x[0::2], x[1::2]) rotated, written as evens then odds. */
function ropeRef(x: number[], pos: number, invFreq: Float32Array, scaling: number, pairing: 'half' | 'interleaved'): number[] {
  const half = x.length / 2;
  const [x1, x2] = pairing === 'interleaved'
    ? [x.filter((_, i) => i % 2 === 0), x.filter((_, i) => i % 2 === 1)]
    : [x.slice(0, half), x.slice(half)];
  const cos = x1.map((_, i) => Math.cos(pos * invFreq[i]!) * scaling);
  const sin = x1.map((_, i) => Math.sin(pos * invFreq[i]!) * scaling);
  return [...x1.map((a, i) => a * cos[i]! - x2[i]! * sin[i]!), ...x2.map((a, i) => a * cos[i]! + x1[i]! * sin[i]!)];
}

interface Case { spec: AttentionSpec; m: MlaSpec; D: number; w: Record<string, Mat>; bias: Record<string, Float32Array> }

function mlaRef(c: Case, x: number[][]): number[][] {
  const { spec, m, w, bias } = c;
  const H = spec.numHeads;
  const [Dn, Dr, Dv, R] = [m.qkNopeHeadDim, m.qkRopeHeadDim, m.vHeadDim, m.kvLoraRank];
  const rope = (v: number[], t: number) => ropeRef(v, t, spec.rope.invFreq, spec.rope.attentionScaling, spec.rope.pairing);
  const q = m.qLoraRank === undefined ? linearRef(x, w['q']!) : linearRef(rmsNormRef(linearRef(x, w['qA']!, bias['qA']), w['qNorm']!.v), w['qB']!);
  const compressed = linearRef(x, w['kvA']!, bias['kvA']);
  const latent = rmsNormRef(compressed.map((r) => r.slice(0, R)), w['kvNorm']!.v);
  const kRot = compressed.map((r, t) => rope(r.slice(R), t));
  const kv = linearRef(latent, w['kvB']!);
  const out = x.map((_, t) => {
    const heads: number[] = [];
    for (let h = 0; h < H; h++) {
      const qh = q[t]!.slice(h * (Dn + Dr), (h + 1) * (Dn + Dr));
      const query = [...qh.slice(0, Dn), ...rope(qh.slice(Dn), t)];
      const scores = Array.from({ length: t + 1 }, (_, j) => {
        const key = [...kv[j]!.slice(h * (Dn + Dv), h * (Dn + Dv) + Dn), ...kRot[j]!];
        return spec.scale! * key.reduce((s, k, d) => s + k * query[d]!, 0);
      });
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const sum = e.reduce((a, v) => a + v, 0);
      for (let d = 0; d < Dv; d++) heads.push(e.reduce((a, p, j) => a + (p / sum) * kv[j]![h * (Dn + Dv) + Dn + d]!, 0));
    }
    return heads;
  });
  return linearRef(out, w['o']!, bias['o']);
}

function makeCase(rng: Rng, m: MlaSpec, pairing: 'half' | 'interleaved', withBias: boolean): Case {
  const [D, H] = [20, 3];
  const qk = m.qkNopeHeadDim + m.qkRopeHeadDim;
  const mat = (rows: number, cols: number, std = 0.3, mean = 0): Mat => ({ rows, cols, v: rng.normals(rows * cols, std, mean) });
  const w: Record<string, Mat> = {
    kvA: mat(m.kvLoraRank + m.qkRopeHeadDim, D), kvNorm: mat(1, m.kvLoraRank, 0.1, 1),
    kvB: mat(H * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank), o: mat(D, H * m.vHeadDim),
    ...(m.qLoraRank === undefined
      ? { q: mat(H * qk, D) }
      : { qA: mat(m.qLoraRank, D), qNorm: mat(1, m.qLoraRank, 0.1, 1), qB: mat(H * qk, m.qLoraRank) }),
  };
  const bias: Record<string, Float32Array> = withBias
    ? { kvA: rng.normals(m.kvLoraRank + m.qkRopeHeadDim, 0.2), o: rng.normals(D, 0.2), ...(m.qLoraRank ? { qA: rng.normals(m.qLoraRank, 0.2) } : {}) }
    : {};
  const invFreq = Float32Array.from({ length: m.qkRopeHeadDim / 2 }, (_, i) => 0.9 ** (3 * i));
  const spec: AttentionSpec = {
    numHeads: H, numKvHeads: H, headDim: qk, qkvBias: withBias, outputBias: withBias, qkNorm: 'none', scale: 0.37, mla: m,
    rope: { invFreq, rotaryDim: m.qkRopeHeadDim, attentionScaling: 1.13, pairing, type: 'yarn', theta: 10000 },
  };
  return { spec, m, D, w, bias };
}

function block(c: Case): MlaAttention {
  const t = (m: Mat) => b.upload(m.v, m.rows === 1 ? [m.cols] : [m.rows, m.cols], 'f32');
  const v = (a: Float32Array | undefined) => (a ? b.upload(a, [a.length], 'f32') : undefined);
  const { w, bias } = c;
  const opt = <K extends string>(key: K, a: Float32Array | undefined) => (a ? { [key]: v(a)! } : {});
  const weights: MlaWeights = {
    query: w['q'] ? { kind: 'full', q: t(w['q']) } : { kind: 'lora', a: t(w['qA']!), norm: t(w['qNorm']!), b: t(w['qB']!), ...opt('aBias', bias['qA']) },
    kvA: t(w['kvA']!), kvNorm: t(w['kvNorm']!), kvB: t(w['kvB']!), o: t(w['o']!),
    ...opt('kvABias', bias['kvA']), ...opt('oBias', bias['o']),
  };
  return new MlaAttention(b, c.spec, weights, b.upload(c.spec.rope.invFreq, [c.spec.rope.invFreq.length], 'f32'));
}

describe('multi-head latent attention', () => {
  const variants = [
    { name: 'q LoRA, biases, interleaved RoPE', m: { qLoraRank: 7, kvLoraRank: 9, qkNopeHeadDim: 5, qkRopeHeadDim: 4, vHeadDim: 6 }, pairing: 'interleaved', bias: true },
    { name: 'q_proj, no bias, rotate_half RoPE', m: { kvLoraRank: 11, qkNopeHeadDim: 3, qkRopeHeadDim: 6, vHeadDim: 2 }, pairing: 'half', bias: false },
  ] as const;
  for (const [n, variant] of variants.entries()) {
    it(`${variant.name}: chunked through the cache, equals transformers' computation`, async () => {
      const rng = new Rng(300 + n);
      const c = makeCase(rng, variant.m, variant.pairing, variant.bias);
      const mla = block(c);
      const T = 9;
      const x = Array.from({ length: T }, () => Array.from(rng.normals(c.D)));
      const expected = mlaRef(c, x);
      const cache = new KVCache(b, [mla.cacheShape], 'f32');
      let at = 0;
      for (const n of [4, 1, 3, 1]) {
        const chunk = b.upload(Float32Array.from(x.slice(at, at + n).flat()), [n, c.D], 'f32');
        const y = runChunk(mla, cache, chunk, n);
        assert.deepEqual(y.shape, [n, c.D]);
        const err = relativeError((await y.read()) as Float32Array, expected.slice(at, at + n).flat());
        assert.ok(err < 1e-5, `${variant.name}, rows ${at}..${at + n}: relative error ${err}`);
        at += n;
      }
      const kv = cache.layers[0]!;
      // The cache holds the normalised latent [S, 1, R] and the rotated shared key [S, 1, Dr] — not per-head K/V.
      const [R, Dr] = [variant.m.kvLoraRank, variant.m.qkRopeHeadDim];
      assert.deepEqual(kv.keys.shape.slice(1), [1, R]);
      assert.deepEqual(kv.values.shape.slice(1), [1, Dr]);
      const compressed = linearRef(x, c.w['kvA']!, c.bias['kvA']);
      const latent = rmsNormRef(compressed.map((r) => r.slice(0, R)), c.w['kvNorm']!.v);
      const cached = (await b.sliceRows(kv.keys, 0, T).read()) as Float32Array;
      assert.ok(relativeError(cached, latent.flat()) < 1e-6, 'cached latent differs from rmsNorm(kv_a(x)[:R])');
    });
  }

  it('two sequences in lockstep each equal transformers\' computation of that sequence alone', async () => {
    const variant = variants[0];
    const rng = new Rng(310);
    const c = makeCase(rng, variant.m, variant.pairing, variant.bias);
    const mla = block(c);
    const [B, T] = [2, 7];
    const xs = Array.from({ length: B }, () => Array.from({ length: T }, () => Array.from(rng.normals(c.D))));
    const expected = xs.map((x) => mlaRef(c, x));
    const cache = new KVCache(b, [mla.cacheShape], 'f32', { batch: B, capacity: 5 }); // grows past 5 on the way
    let at = 0;
    for (const n of [3, 1, 2, 1]) {
      const rows = xs.flatMap((x) => x.slice(at, at + n)); // sequence 0's n rows, then sequence 1's
      const y = (await runChunk(mla, cache, b.upload(Float32Array.from(rows.flat()), [B * n, c.D], 'f32'), n).read()) as Float32Array;
      for (let s = 0; s < B; s++) {
        const err = relativeError(y.subarray(s * n * c.D, (s + 1) * n * c.D), expected[s]!.slice(at, at + n).flat());
        assert.ok(err < 1e-5, `sequence ${s}, rows ${at}..${at + n}: relative error ${err}`);
      }
      at += n;
    }
    assert.equal(cache.storageVersion, 2, 'allocated at creation, then grown once');
  });
});

/** One step of `n` tokens per sequence through `mla`: the cache's positions and rows uploaded, the cache advanced. */
function runChunk(mla: MlaAttention, cache: KVCache, x: ReturnType<typeof b.upload>, n: number) {
  const values = cache.stepValues(new Int32Array(cache.batch * n));
  const step = {
    batch: cache.batch, tokens: n,
    positions: b.upload(values.positions, [cache.batch, n], 'i32'), rows: b.upload(values.rows, [cache.batch * n], 'i32'),
  };
  const y = mla.forward(x, step, cache.layers[0]!);
  cache.advance(n);
  return y;
}
