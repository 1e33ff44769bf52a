// The CPU backend: the readable reference every other backend is tested against.
// Storage is a host typed array; every kernel widens to f32, computes, and narrows to the output dtype.
import { attentionSizes, splitStarts, type AttentionOptions, type Backend, type CapturedStep, type ClampedGlu, type RopeOptions, type RouterSpec } from '../backend.ts';
import { allocHost, isFloat, type DType, type FloatDType, type HostArray } from '../../core/dtype.ts';
import { assert } from '../../core/errors.ts';
import { sizeOf, type Shape, type Tensor } from '../../core/tensor.ts';
import {
  addValues, mulValues, rmsNormValues, sameShape, scaleRowsValues, sigmoidValues, siluMulValues, softmaxValues,
} from './elementwise.ts';
import { matmulInto } from './matmul.ts';
import { hashedNormals } from './random.ts';
import {
  gatherRowsValues, routeValues, scatterAddWeightedValues, sortByExpertValues,
} from './moe.ts';
import { attentionValues, ropeValues } from './rope-attention.ts';
import { decodeBytes, f32Of, fromValues, hostData, i32Of, weightRowsOf, wrap } from './storage.ts';

export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;

  // ---- memory ----
  upload(data: HostArray, shape: Shape, dtype: DType): Tensor {
    // A copy, as a GPU upload would be: later writes to `data` do not change the tensor.
    return wrap(this, data.slice(), shape, dtype);
  }

  uploadBytes(bytes: Uint8Array, sourceDType: DType, shape: Shape, dtype: DType): Tensor {
    const source = wrap(this, decodeBytes(bytes, sourceDType, sizeOf(shape)), shape, sourceDType);
    if (sourceDType === dtype) return source;
    assert(isFloat(dtype) && isFloat(sourceDType), `cannot convert ${sourceDType} to ${dtype}`);
    return this.cast(source, dtype);
  }

  zeros(shape: Shape, dtype: DType): Tensor {
    return wrap(this, allocHost(dtype, sizeOf(shape)), shape, dtype);
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    if (t.dtype === 'i32') return Int32Array.from(i32Of(t));
    return Float32Array.from(f32Of(t));
  }

  write(t: Tensor, data: HostArray): void {
    const dst = hostData(t);
    assert(data.constructor === dst.constructor && data.length === dst.length, `write of ${data.constructor.name}(${data.length}) into ${t}`);
    dst.set(data as never);
  }

  release(): void {
    // Host arrays are reclaimed by the garbage collector.
  }

  // ---- captured steps ----
  /** Nothing to record on the CPU: each replay runs body again (so callers have one code path for every backend). */
  async capture(body: () => Promise<Tensor>): Promise<CapturedStep> {
    return { replay: body, dispose: () => {} };
  }

  // ---- elementwise and layout ----
  cast(x: Tensor, dtype: FloatDType): Tensor {
    return fromValues(this, f32Of(x), x.shape, dtype);
  }

  add(a: Tensor, b: Tensor): Tensor {
    sameShape(a, b, 'add');
    return this.floatResult(addValues(f32Of(a), f32Of(b)), a);
  }

  mul(a: Tensor, b: Tensor): Tensor {
    sameShape(a, b, 'mul');
    return this.floatResult(mulValues(f32Of(a), f32Of(b)), a);
  }

  scaleRows(x: Tensor, s: Tensor): Tensor {
    assert(s.size === x.dim(0), `scaleRows: ${s} for ${x}`);
    return this.floatResult(scaleRowsValues(f32Of(x), f32Of(s), x.size / x.dim(0)), x);
  }

  sigmoid(x: Tensor): Tensor {
    return this.floatResult(sigmoidValues(f32Of(x)), x);
  }

  scale(x: Tensor, s: number): Tensor {
    return this.floatResult(f32Of(x).map((v) => v * s), x);
  }

  clamp(x: Tensor, lo: number, hi: number): Tensor {
    return this.floatResult(f32Of(x).map((v) => Math.min(Math.max(v, lo), hi)), x);
  }

  softmax(x: Tensor): Tensor {
    return this.floatResult(softmaxValues(f32Of(x), x.dim(-1)), x);
  }

  sliceRows(x: Tensor, start: number, count: number): Tensor {
    const rowSize = x.size / x.dim(0);
    assert(start >= 0 && start + count <= x.dim(0), `sliceRows ${start}+${count} of ${x}`);
    const data = hostData(x).slice(start * rowSize, (start + count) * rowSize);
    return wrap(this, data, [count, ...x.shape.slice(1)], x.dtype);
  }

  sliceColumns(x: Tensor, start: number, count: number): Tensor {
    const [R, C] = [x.dim(0), x.dim(1)];
    assert(x.rank === 2 && start >= 0 && start + count <= C, `sliceColumns ${start}+${count} of ${x}`);
    const src = hostData(x);
    const out = allocHost(x.dtype, R * count);
    for (let r = 0; r < R; r++) out.set(src.subarray(r * C + start, r * C + start + count), r * count);
    return wrap(this, out, [R, count], x.dtype);
  }

  concatHeads(a: Tensor, b: Tensor): Tensor {
    const [T, H, A] = [a.dim(0), a.dim(1), a.dim(2)];
    const [Hb, B] = [b.dim(1), b.dim(2)];
    assert(a.dtype === b.dtype && b.dim(0) === T && (Hb === 1 || Hb === H), `concatHeads ${a} and ${b}`);
    const [sa, sb] = [hostData(a), hostData(b)];
    const out = allocHost(a.dtype, T * H * (A + B));
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const o = (t * H + h) * (A + B);
        out.set(sa.subarray((t * H + h) * A, (t * H + h + 1) * A), o);
        const bh = Hb === 1 ? t : t * H + h;
        out.set(sb.subarray(bh * B, (bh + 1) * B), o + A);
      }
    }
    return wrap(this, out, [T, H, A + B], a.dtype);
  }

  copyRows(dst: Tensor, src: Tensor, at: number): void {
    const rowSize = dst.size / dst.dim(0);
    assert(dst.dtype === src.dtype && src.size % rowSize === 0, `copyRows ${src} into ${dst}`);
    assert(at >= 0 && at * rowSize + src.size <= dst.size, `copyRows at ${at}: ${src} into ${dst}`);
    (hostData(dst) as Float32Array).set(hostData(src) as Float32Array, at * rowSize);
  }

  writeRows(dst: Tensor, src: Tensor, rows: Tensor): void {
    const R = dst.dim(0);
    const rowSize = dst.size / R;
    const at = i32Of(rows);
    assert(dst.dtype === src.dtype && src.size === at.length * rowSize, `writeRows ${src} into ${dst} at ${rows}`);
    const [to, from] = [hostData(dst) as Float32Array, hostData(src) as Float32Array];
    at.forEach((r, t) => {
      assert(r >= 0 && r < R, `writeRows: row ${r} of ${dst}`);
      to.set(from.subarray(t * rowSize, (t + 1) * rowSize), r * rowSize);
    });
  }

  // ---- dense layers ----
  linear(x: Tensor, w: Tensor, bias?: Tensor): Tensor {
    const [N, K] = [w.dim(0), w.dim(1)];
    assert(x.dim(-1) === K, `linear: ${x} · ${w}ᵀ`);
    const M = x.size / K;
    const out = new Float32Array(M * N);
    matmulInto(out, f32Of(x), weightRowsOf(w), 0, M, N, K, bias ? f32Of(bias) : undefined);
    return this.floatResult(out, x, [...x.shape.slice(0, -1), N]);
  }

  /** Each part by matmulInto on its rows of w: the same sums, in the same order, as linear on that part alone. */
  linearSplit(x: Tensor, w: Tensor, sizes: readonly number[], bias?: Tensor): Tensor[] {
    const starts = splitStarts(x, w, sizes, bias);
    const K = w.dim(1);
    const M = x.size / K;
    const [xs, rows, b] = [f32Of(x), weightRowsOf(w), bias && f32Of(bias)];
    return sizes.map((n, i) => {
      const out = new Float32Array(M * n);
      const at = starts[i]!;
      matmulInto(out, xs, { ...rows, offset: rows.offset + at * K }, 0, M, n, K, b?.subarray(at, at + n));
      return this.floatResult(out, x, [...x.shape.slice(0, -1), n]);
    });
  }

  embedding(table: Tensor, ids: Tensor): Tensor {
    const D = table.dim(1);
    const src = hostData(table);
    const idx = i32Of(ids);
    const out = allocHost(table.dtype, idx.length * D);
    idx.forEach((id, t) => out.set(src.subarray(id * D, (id + 1) * D), t * D));
    return wrap(this, out, [idx.length, D], table.dtype);
  }

  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
    const D = x.dim(-1);
    assert(w.size === D, `rmsNorm: weight ${w} for ${x}`);
    return this.floatResult(rmsNormValues(f32Of(x), f32Of(w), D, eps), x);
  }

  rope(x: Tensor, positions: Tensor, invFreq: Tensor, opts: RopeOptions): Tensor {
    const [T, H, Dh] = [x.dim(0), x.dim(1), x.dim(2)];
    assert(positions.size === T && invFreq.size * 2 === opts.rotaryDim && opts.rotaryDim <= Dh, `rope on ${x}`);
    return this.floatResult(ropeValues(f32Of(x), T, H, Dh, i32Of(positions), f32Of(invFreq), opts), x);
  }

  attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
    const sizes = attentionSizes(q, k, v, opts);
    const { B, T, S, H, Dv } = sizes;
    const positions = i32Of(opts.positions);
    assert(positions.every((p) => p >= 0 && p < S), `attention: positions outside the ${S} cache rows`);
    assert(!opts.sinks || opts.sinks.size === H, `attention sinks ${opts.sinks} for ${H} heads`);
    const out = attentionValues(f32Of(q), f32Of(k), f32Of(v), positions, sizes, opts, opts.sinks ? f32Of(opts.sinks) : undefined);
    return this.floatResult(out, q, [B, T, H, Dv]);
  }

  siluMul(x: Tensor, clamped?: ClampedGlu): Tensor {
    const F = x.dim(-1) / 2;
    return this.floatResult(siluMulValues(f32Of(x), F, clamped), x, [...x.shape.slice(0, -1), F]);
  }

  // ---- MoE stages ----
  route(logits: Tensor, spec: RouterSpec, selectionBias?: Tensor): { weights: Tensor; experts: Tensor } {
    const [T, E] = [logits.dim(0), logits.dim(1)];
    assert(!spec.groups || (E % spec.groups.count === 0 && E / spec.groups.count >= 2), `route: ${E} experts in ${spec.groups?.count} groups`);
    const { weights, experts } = routeValues(f32Of(logits), E, spec, selectionBias ? f32Of(selectionBias) : undefined);
    return { weights: wrap(this, weights, [T, spec.topK], 'f32'), experts: wrap(this, experts, [T, spec.topK], 'i32') };
  }

  sortByExpert(experts: Tensor, numExperts: number): { slots: Tensor; offsets: Tensor } {
    const { slots, offsets } = sortByExpertValues(i32Of(experts), numExperts);
    return { slots: wrap(this, slots, [slots.length], 'i32'), offsets: wrap(this, offsets, [numExperts + 1], 'i32') };
  }

  gatherRows(x: Tensor, slots: Tensor, topK: number): Tensor {
    const D = x.dim(-1);
    return this.floatResult(gatherRowsValues(f32Of(x), D, i32Of(slots), topK), x, [slots.size, D]);
  }

  groupedLinear(x: Tensor, w: Tensor, offsets: Tensor, bias?: Tensor): Tensor {
    const [E, N, K] = [w.dim(0), w.dim(1), w.dim(2)];
    const off = i32Of(offsets);
    assert(off.length === E + 1 && x.dim(-1) === K && off[E] === x.dim(0), `groupedLinear: ${x}, ${w}, offsets ${off.length}`);
    const out = new Float32Array(x.dim(0) * N);
    const xs = f32Of(x);
    const b = bias ? f32Of(bias) : undefined;
    assert(!b || b.length === E * N, `groupedLinear bias ${bias} for ${w}`);
    for (let e = 0; e < E; e++) {
      matmulInto(out, xs, weightRowsOf(w, e * N * K), off[e]!, off[e + 1]!, N, K, b?.subarray(e * N, (e + 1) * N));
    }
    return this.floatResult(out, x, [x.dim(0), N]);
  }

  /** The two ops composed (the reference: the gate|up sums are rounded to x's dtype before the activation). */
  groupedGluLinear(x: Tensor, gateUp: Tensor, offsets: Tensor, bias?: Tensor, clamped?: ClampedGlu): Tensor {
    assert(gateUp.rank === 3 && gateUp.dim(1) % 2 === 0, `groupedGluLinear: ${gateUp} is not [E, 2F, Kin] (gate rows, then up rows)`);
    return this.siluMul(this.groupedLinear(x, gateUp, offsets, bias), clamped);
  }

  scatterAddWeighted(y: Tensor, slots: Tensor, weights: Tensor, numTokens: number): Tensor {
    const D = y.dim(-1);
    const K = weights.dim(-1);
    const out = scatterAddWeightedValues(f32Of(y), D, i32Of(slots), f32Of(weights), K, numTokens);
    return this.floatResult(out, y, [numTokens, D]);
  }

  // ---- fill ----
  randomNormal(shape: Shape, dtype: FloatDType, seed: number, std: number): Tensor {
    assert(Number.isSafeInteger(seed) && seed >= 0, `randomNormal: seed ${seed} is not an integer in [0, 2^53)`);
    return fromValues(this, hashedNormals(sizeOf(shape), seed, std), shape, dtype);
  }

  /** f32 results as a tensor of `like`'s dtype and (unless given) shape. */
  private floatResult(values: Float32Array, like: Tensor, shape: Shape = like.shape): Tensor {
    return fromValues(this, values, shape, like.dtype as FloatDType);
  }
}
