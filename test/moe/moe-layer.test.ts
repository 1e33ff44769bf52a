// The MoE layer's staged pipeline equals a plain per-token loop y_t = Σ_k w_tk · FFN_{e_tk}(x_t) (+ gated shared
// expert), the observer sees exactly the plain loop's routing, and no routing is read back without an observer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend, RouterSpec } from '../../src/backend/backend.ts';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { MoeLayer } from '../../src/moe/moe-layer.ts';
import type { RoutingDecision } from '../../src/moe/observer.ts';
import { relativeError } from '../util/compare.ts';
import { Rng } from '../util/random.ts';

// x: [T, D]; router: [E, D]; gateUp: [E, 2F, D]; down: [E, D, F]
const silu = (v: number) => v / (1 + Math.exp(-v));

function ffn(x: Float32Array, gateUp: Float32Array, down: Float32Array, D: number, F: number, e = 0): Float64Array {
  const h = new Float64Array(F);
  for (let f = 0; f < F; f++) {
    let g = 0;
    let u = 0;
    for (let d = 0; d < D; d++) {
      g += gateUp[(e * 2 * F + f) * D + d]! * x[d]!;
      u += gateUp[(e * 2 * F + F + f) * D + d]! * x[d]!;
    }
    h[f] = silu(g) * u;
  }
  const y = new Float64Array(D);
  for (let d = 0; d < D; d++) for (let f = 0; f < F; f++) y[d] += down[(e * D + d) * F + f]! * h[f]!;
  return y;
}

/** The plain loop: per token, softmax over experts, top-k (ties → lower id), optional renormalisation. */
function plainRouting(x: Float32Array, router: Float32Array, D: number, E: number, spec: RouterSpec, t: number) {
  const logits = Array.from({ length: E }, (_, e) => router.subarray(e * D, (e + 1) * D).reduce((s, w, d) => s + w * x[t * D + d]!, 0));
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  const order = exps.map((p, e) => ({ p: p / sum, e })).sort((a, b) => b.p - a.p || a.e - b.e).slice(0, spec.topK);
  const total = order.reduce((s, o) => s + o.p, 0);
  return order.map((o) => ({ expert: o.e, weight: spec.normalize ? o.p / total : o.p }));
}

function setup(seed: number, T: number, D: number, E: number, F: number, shared: boolean, spec: RouterSpec) {
  const rng = new Rng(seed);
  const b = new CpuBackend();
  const host = {
    x: rng.normals(T * D), router: rng.normals(E * D, 0.5), gateUp: rng.normals(E * 2 * F * D, 0.2),
    down: rng.normals(E * D * F, 0.2), sGateUp: rng.normals(2 * F * D, 0.2), sDown: rng.normals(D * F, 0.2), sGate: rng.normals(D, 0.3),
  };
  const t = (a: Float32Array, shape: number[]) => b.upload(a, shape, 'f32');
  const layer = new MoeLayer(b, { kind: 'moe', numExperts: E, expertIntermediateSize: F, router: spec, ...(shared ? { sharedExpert: { intermediateSize: F, gated: true } } : {}) }, {
    router: t(host.router, [E, D]), gateUp: t(host.gateUp, [E, 2 * F, D]), down: t(host.down, [E, D, F]),
    ...(shared ? { shared: { gateUp: t(host.sGateUp, [2 * F, D]), down: t(host.sDown, [D, F]) }, sharedGate: t(host.sGate, [1, D]) } : {}),
  });
  return { b, host, layer, x: t(host.x, [T, D]) };
}

describe('MoE layer', () => {
  const cases = [
    { T: 31, D: 17, E: 8, F: 13, K: 2, normalize: true, shared: false },
    { T: 33, D: 24, E: 6, F: 11, K: 3, normalize: false, shared: true },
    { T: 1, D: 9, E: 5, F: 7, K: 5, normalize: true, shared: false },
  ];
  for (const c of cases) {
    it(`equals the per-token loop: T=${c.T} D=${c.D} E=${c.E} K=${c.K} normalize=${c.normalize} shared=${c.shared}`, async () => {
      const spec: RouterSpec = { scoring: 'softmax-topk', topK: c.K, normalize: c.normalize };
      const { host, layer, x } = setup(c.T * 7 + c.E, c.T, c.D, c.E, c.F, c.shared, spec);
      const seen: RoutingDecision[] = [];
      const positions = Int32Array.from({ length: c.T }, (_, i) => 100 + i);
      const out = (await (await layer.forward(x, { observer: { onRouting: (d) => seen.push(d) }, layer: 4, positions })).read()) as Float32Array;
      const expected = new Float64Array(c.T * c.D);
      for (let t = 0; t < c.T; t++) {
        const xt = host.x.subarray(t * c.D, (t + 1) * c.D);
        const routes = plainRouting(host.x, host.router, c.D, c.E, spec, t);
        routes.forEach((r, k) => {
          const y = ffn(xt, host.gateUp, host.down, c.D, c.F, r.expert);
          for (let d = 0; d < c.D; d++) expected[t * c.D + d] += r.weight * y[d]!;
          assert.equal(seen[0]!.experts[t * c.K + k], r.expert, `token ${t} choice ${k}`);
          assert.ok(Math.abs(seen[0]!.weights[t * c.K + k]! - r.weight) < 1e-6);
        });
        if (c.shared) {
          const y = ffn(xt, host.sGateUp, host.sDown, c.D, c.F);
          const g = 1 / (1 + Math.exp(-xt.reduce((s, v, d) => s + v * host.sGate[d]!, 0)));
          for (let d = 0; d < c.D; d++) expected[t * c.D + d] += g * y[d]!;
        }
      }
      assert.ok(relativeError(out, expected) < 1e-5, `rel err ${relativeError(out, expected)}`);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.layer, 4);
      assert.deepEqual(Array.from(seen[0]!.positions), Array.from(positions));
    });
  }

  it('a one-expert MoE equals the dense SwiGLU FFN', async () => {
    const spec: RouterSpec = { scoring: 'softmax-topk', topK: 1, normalize: true };
    const { host, layer, x } = setup(5, 29, 19, 1, 23, false, spec);
    const out = (await (await layer.forward(x)).read()) as Float32Array;
    const expected = new Float64Array(29 * 19);
    for (let t = 0; t < 29; t++) expected.set(ffn(host.x.subarray(t * 19, (t + 1) * 19), host.gateUp, host.down, 19, 23), t * 19);
    assert.ok(relativeError(out, expected) < 1e-5);
  });

  it('reads nothing back when no observer is attached', async () => {
    const spec: RouterSpec = { scoring: 'softmax-topk', topK: 2, normalize: true };
    const { b, x, layer } = setup(9, 12, 8, 4, 6, false, spec);
    let reads = 0;
    const original = b.read.bind(b);
    (b as Backend).read = (t: Tensor) => { reads++; return original(t); };
    await layer.forward(x);
    assert.equal(reads, 0);
    await layer.forward(x, { observer: { onRouting: () => {} }, layer: 0, positions: new Int32Array(12) });
    assert.equal(reads, 2);
  });

  it('routerInF32 routes bf16 activations from f32 logits (DeepSeek), as transformers does', async () => {
    const [T, D, E, F] = [17, 24, 8, 6];
    const spec: RouterSpec = { scoring: 'softmax-topk', topK: 2, normalize: false };
    const rng = new Rng(21);
    const b = new CpuBackend();
    const xBf16 = b.cast(b.upload(rng.normals(T * D), [T, D], 'f32'), 'bf16');
    const x = (await xBf16.read()) as Float32Array; // the bf16 values, widened exactly
    const router = rng.normals(E * D, 0.5);
    const layer = new MoeLayer(b, { kind: 'moe', numExperts: E, expertIntermediateSize: F, router: spec, routerInF32: true }, {
      router: b.upload(router, [E, D], 'f32'),
      gateUp: b.cast(b.upload(rng.normals(E * 2 * F * D, 0.2), [E, 2 * F, D], 'f32'), 'bf16'),
      down: b.cast(b.upload(rng.normals(E * D * F, 0.2), [E, D, F], 'f32'), 'bf16'),
    });
    const seen: RoutingDecision[] = [];
    await layer.forward(xBf16, { observer: { onRouting: (d) => seen.push(d) }, layer: 0, positions: new Int32Array(T) });
    for (let t = 0; t < T; t++) {
      plainRouting(x, router, D, E, spec, t).forEach((r, k) => {
        assert.equal(seen[0]!.experts[t * 2 + k], r.expert);
        assert.ok(Math.abs(seen[0]!.weights[t * 2 + k]! - r.weight) < 1e-6, `token ${t}: ${seen[0]!.weights[t * 2 + k]} vs ${r.weight}`);
      });
    }
  });
});
