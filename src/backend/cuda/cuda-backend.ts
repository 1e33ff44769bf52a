// The CUDA backend: tensors in device memory from the caching allocator, every op queued on one stream, only
// `read` waiting for results. Elementwise ops run the NVRTC-compiled kernels of kernels/elementwise.cu, `linear`
// runs the GEMV of kernels/gemv.cu for a few bf16/f16 rows, else cublasGemmEx. Ops without a CUDA kernel yet (NOT_YET_ON_CUDA) throw MoetsError('unsupported').
//
// Memory: `release` (Tensor.dispose) gives a tensor's block back at once; a tensor dropped without it gives its
// block back when the garbage collector finalises its storage. A view (reshape) shares its tensor's storage, so
// disposing a tensor while a view of it is still in use is a bug in the caller.
//
// Captured steps (`capture`, graph.ts): the body's ops are recorded into a CUDA graph instead of run; their
// outputs live in the graph's private memory pool until the step is disposed. Host transfers (read, upload, write)
// inside a capture are refused: a graph cannot wait for the host, and a copy from a host array would be baked in.
// Everything queued on the device's stream while a capture runs joins the graph, so nothing else may use this
// backend until the captured body's promise settles (moets runs one step at a time).
import {
  attentionSizes, splitStarts, type AttentionOptions, type Backend, type CapturedStep, type ClampedGlu, type RopeOptions, type RouterSpec,
} from '../backend.ts';
import { allocHost, DTYPE_BYTES, HOST_ARRAY_TYPE, isFloat, type DType, type FloatDType, type HostArray } from '../../core/dtype.ts';
import { assert, fail } from '../../core/errors.ts';
import { sizeOf, Tensor, type Shape, type Storage } from '../../core/tensor.ts';
import { widen } from '../../core/widen.ts';
import type { DeviceBlock } from './allocator.ts';
import { CudaDevice, type CudaDeviceOptions } from './device.ts';
import { captureStep } from './graph.ts';
import {
  binaryInto, broadcastRowsInto, castInto, clampInto, scaleInto, scaleRowsInto, sigmoidInto,
} from './kernels/elementwise.ts';
import { attentionInto } from './kernels/attention.ts';
import { denseGemvInto, denseGemvPlan, SPLIT_GEMV_MAX_PARTS, splitGemvInto, type DenseGemvArgs } from './kernels/gemv.ts';
import {
  gatherRowsInto, groupedGluLinearInto, groupedLinearInto, routeInto, scatterAddWeightedInto, sortByExpertInto, type GroupedLinearArgs,
} from './kernels/moe.ts';
import { concatHeadsInto, embeddingInto, sliceColumnsInto, writeRowsInto } from './kernels/layout.ts';
import { clampedGluInto, rmsNormInto, ropeInto, siluMulInto, softmaxInto } from './kernels/norm-rope.ts';
import { fillRandomInto } from './kernels/random.ts';

/** Backend ops with no CUDA kernel yet. */
export const NOT_YET_ON_CUDA: readonly (keyof Backend)[] = [];

/** A tensor's device memory: its block from the allocator, and the bytes the tensor uses. */
export class CudaStorage implements Storage {
  constructor(readonly block: DeviceBlock, readonly byteLength: number) {}
}

export class CudaBackend implements Backend {
  readonly name = 'cuda' as const;
  private readonly finalizer = new FinalizationRegistry<DeviceBlock>((block) => {
    if (block.live) this.device.allocator.release(block);
  });

  constructor(readonly device: CudaDevice) {}

  /** Opens the device (ordinal 0 unless given); a one-line MoetsError('device') when CUDA cannot run here. */
  static create(opts: CudaDeviceOptions = {}): CudaBackend {
    return new CudaBackend(CudaDevice.open(opts));
  }

  // ---- memory ----
  upload(data: HostArray, shape: Shape, dtype: DType): Tensor {
    const t = this.empty(shape, dtype);
    this.copyIn('upload', t, data);
    return t;
  }

  write(t: Tensor, data: HostArray): void {
    this.copyIn('write', t, data);
  }

  uploadBytes(bytes: Uint8Array, sourceDType: DType, shape: Shape, dtype: DType): Tensor {
    this.noHostTransfer('uploadBytes');
    const count = sizeOf(shape);
    const need = count * DTYPE_BYTES[sourceDType];
    if (bytes.byteLength !== need) fail('format', `expected ${need} bytes for ${count} ${sourceDType} values, got ${bytes.byteLength}`);
    const source = this.empty(shape, sourceDType);
    if (need > 0) this.device.driver.copyToDevice(ptr(source), bytes, need, this.device.stream);
    if (sourceDType === dtype) return source;
    assert(isFloat(dtype) && isFloat(sourceDType), `cannot convert ${sourceDType} to ${dtype}`);
    const out = this.cast(source, dtype);
    this.release(source);
    return out;
  }

  zeros(shape: Shape, dtype: DType): Tensor {
    const t = this.empty(shape, dtype);
    const bytes = storageOf(t).byteLength;
    if (bytes > 0) this.device.driver.fillBytes(ptr(t), 0, bytes, this.device.stream);
    return t;
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    this.noHostTransfer('read');
    const host = allocHost(t.dtype, t.size);
    if (host.byteLength > 0) this.device.driver.copyToHost(host, ptr(t), host.byteLength, this.device.stream);
    if (host instanceof Uint16Array) return widen(host, t.dtype as FloatDType);
    return host;
  }

  release(t: Tensor): void {
    const storage = storageOf(t);
    if (!storage.block.live) return;
    this.finalizer.unregister(storage);
    this.device.allocator.release(storage.block);
  }

  // ---- captured steps ----
  capture(body: () => Promise<Tensor>): Promise<CapturedStep> {
    return captureStep(this.device, body);
  }

  // ---- elementwise and layout ----
  cast(x: Tensor, dtype: FloatDType): Tensor {
    const from = floatOf(x);
    const out = this.empty(x.shape, dtype);
    if (from === dtype) this.copy(out, 0, x, x.size);
    else castInto(this.device, from, dtype, ptr(out), ptr(x), x.size);
    return out;
  }

  add(a: Tensor, b: Tensor): Tensor {
    return this.binary('add', a, b);
  }

  mul(a: Tensor, b: Tensor): Tensor {
    return this.binary('mul', a, b);
  }

  scaleRows(x: Tensor, s: Tensor): Tensor {
    assert(s.size === x.dim(0), `scaleRows: ${s} for ${x}`);
    const scales = s.dtype === 'f32' ? s : this.cast(s, 'f32');
    const out = this.empty(x.shape, floatOf(x));
    scaleRowsInto(this.device, floatOf(x), ptr(out), ptr(x), ptr(scales), x.size / x.dim(0), x.size);
    if (scales !== s) this.release(scales);
    return out;
  }

  sigmoid(x: Tensor): Tensor {
    const out = this.empty(x.shape, floatOf(x));
    sigmoidInto(this.device, floatOf(x), ptr(out), ptr(x), x.size);
    return out;
  }

  scale(x: Tensor, s: number): Tensor {
    const out = this.empty(x.shape, floatOf(x));
    scaleInto(this.device, floatOf(x), ptr(out), ptr(x), s, x.size);
    return out;
  }

  clamp(x: Tensor, lo: number, hi: number): Tensor {
    const out = this.empty(x.shape, floatOf(x));
    clampInto(this.device, floatOf(x), ptr(out), ptr(x), lo, hi, x.size);
    return out;
  }

  softmax(x: Tensor): Tensor {
    const out = this.empty(x.shape, floatOf(x));
    const D = x.rank === 0 ? 1 : x.dim(-1);
    softmaxInto(this.device, floatOf(x), ptr(out), ptr(x), D === 0 ? 0 : x.size / D, D);
    return out;
  }

  sliceRows(x: Tensor, start: number, count: number): Tensor {
    const rowSize = x.size / x.dim(0);
    assert(start >= 0 && count >= 0 && start + count <= x.dim(0), `sliceRows ${start}+${count} of ${x}`);
    const out = this.empty([count, ...x.shape.slice(1)], x.dtype);
    this.copy(out, 0, x, count * rowSize, start * rowSize);
    return out;
  }

  sliceColumns(x: Tensor, start: number, count: number): Tensor {
    const [R, C] = [x.dim(0), x.dim(1)];
    assert(x.rank === 2 && start >= 0 && count >= 0 && start + count <= C, `sliceColumns ${start}+${count} of ${x}`);
    const out = this.empty([R, count], x.dtype);
    sliceColumnsInto(this.device, x.dtype, ptr(out), ptr(x), C, start, count, R * count);
    return out;
  }

  concatHeads(a: Tensor, b: Tensor): Tensor {
    const [T, H, A] = [a.dim(0), a.dim(1), a.dim(2)];
    const [Hb, B] = [b.dim(1), b.dim(2)];
    assert(a.rank === 3 && b.rank === 3 && a.dtype === b.dtype && b.dim(0) === T && (Hb === 1 || Hb === H), `concatHeads ${a} and ${b}`);
    const out = this.empty([T, H, A + B], a.dtype);
    const widths = { heads: H, a: A, b: B, bBroadcast: Hb === 1 };
    concatHeadsInto(this.device, a.dtype, ptr(out), ptr(a), ptr(b), widths, out.size);
    return out;
  }

  copyRows(dst: Tensor, src: Tensor, at: number): void {
    const rowSize = dst.size / dst.dim(0);
    assert(dst.dtype === src.dtype && src.size % rowSize === 0, `copyRows ${src} into ${dst}`);
    assert(at >= 0 && at * rowSize + src.size <= dst.size, `copyRows at ${at}: ${src} into ${dst}`);
    this.copy(dst, at * rowSize, src, src.size);
  }

  writeRows(dst: Tensor, src: Tensor, rows: Tensor): void {
    const R = dst.dim(0);
    const rowSize = dst.size / R;
    assert(dst.dtype === src.dtype && rows.dtype === 'i32' && src.size === rows.size * rowSize, `writeRows ${src} into ${dst} at ${rows}`);
    writeRowsInto(this.device, dst.dtype, ptr(dst), ptr(src), ptr(rows), R, rowSize, src.size);
  }

  // ---- dense layers ----
  linear(x: Tensor, w: Tensor, bias?: Tensor): Tensor {
    const [N, K] = [w.dim(0), w.dim(1)];
    assert(w.rank === 2 && x.dim(-1) === K, `linear: ${x} · ${w}ᵀ`);
    const dtype = floatOf(x);
    const M = x.size / K;
    const out = this.empty([...x.shape.slice(0, -1), N], dtype);
    const weights = this.asDType(w, dtype);
    const b = bias && this.asDType(bias, dtype);
    assert(!b || b.size === N, `linear bias ${bias} for ${w}`);
    this.linearInto(dtype, { out: ptr(out), x: ptr(x), w: ptr(weights), bias: b ? ptr(b) : 0, T: M, Nout: N, Kin: K });
    if (weights !== w) this.release(weights);
    if (b && b !== bias) this.release(b);
    return out;
  }

  /**
   * At T = 1 (bf16/f16, 16-byte rows, at most SPLIT_GEMV_MAX_PARTS parts) one GEMV launch over all the stacked rows,
   * each part's columns stored in its own output; else each part as `linear` does it, on its rows of w in place.
   */
  linearSplit(x: Tensor, w: Tensor, sizes: readonly number[], bias?: Tensor): Tensor[] {
    const starts = splitStarts(x, w, sizes, bias);
    const [N, K] = [w.dim(0), w.dim(1)];
    const dtype = floatOf(x);
    const M = x.size / K;
    const outs = sizes.map((n) => this.empty([...x.shape.slice(0, -1), n], dtype));
    const weights = this.asDType(w, dtype);
    const b = bias && this.asDType(bias, dtype);
    const [wp, bp, size] = [ptr(weights), b ? ptr(b) : 0, DTYPE_BYTES[dtype]];
    const split = { outs: outs.map(ptr), x: ptr(x), w: wp, bias: bp, T: M, sizes, Kin: K };
    const plan = sizes.length <= SPLIT_GEMV_MAX_PARTS ? denseGemvPlan(this.device, dtype, { ...split, out: 0, Nout: N }) : undefined;
    if (plan) {
      splitGemvInto(this.device, dtype, split, plan);
    } else {
      sizes.forEach((n, i) => this.linearInto(dtype, {
        out: split.outs[i]!, x: split.x, w: wp + starts[i]! * K * size, bias: bp && bp + starts[i]! * size, T: M, Nout: n, Kin: K,
      }));
    }
    if (weights !== w) this.release(weights);
    if (b && b !== bias) this.release(b);
    return outs;
  }

  /**
   * out = x · wᵀ (+ bias), all of `dtype`. A few rows (decode): the GEMV streams the weights once at close to copy
   * speed, where cuBLAS picks split-K kernels that read them at under half of it. Else cuBLAS, the bias copied into
   * out first and added by beta = 1.
   */
  private linearInto(dtype: FloatDType, a: DenseGemvArgs): void {
    const plan = denseGemvPlan(this.device, dtype, a);
    if (plan) {
      denseGemvInto(this.device, dtype, a, plan);
      return;
    }
    const { T: M, Nout: N, Kin: K } = a;
    if (a.bias) broadcastRowsInto(this.device, dtype, a.out, a.bias, N, M * N);
    this.device.cublas.linear(a.out, a.x, a.w, dtype, { M, N, K }, a.bias !== 0);
  }

  embedding(table: Tensor, ids: Tensor): Tensor {
    const [V, D] = [table.dim(0), table.dim(1)];
    assert(table.rank === 2 && ids.dtype === 'i32', `embedding: ${table} rows by ${ids}`);
    const out = this.empty([ids.size, D], floatOf(table));
    embeddingInto(this.device, floatOf(table), ptr(out), ptr(table), ptr(ids), V, D, out.size);
    return out;
  }

  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
    const D = x.dim(-1);
    assert(w.size === D, `rmsNorm: weight ${w} for ${x}`);
    const out = this.empty(x.shape, floatOf(x));
    rmsNormInto(this.device, floatOf(x), floatOf(w), ptr(out), ptr(x), ptr(w), D === 0 ? 0 : x.size / D, D, eps);
    return out;
  }

  rope(x: Tensor, positions: Tensor, invFreq: Tensor, opts: RopeOptions): Tensor {
    const [T, H, Dh] = [x.dim(0), x.dim(1), x.dim(2)];
    assert(x.rank === 3 && positions.dtype === 'i32' && positions.size === T, `rope on ${x} at positions ${positions}`);
    assert(invFreq.size * 2 === opts.rotaryDim && opts.rotaryDim <= Dh, `rope: ${invFreq} for rotaryDim ${opts.rotaryDim} of ${x}`);
    const freqs = this.asDType(invFreq, 'f32');
    const out = this.empty(x.shape, floatOf(x));
    const layout = { tokens: T, heads: H, headDim: Dh, half: opts.rotaryDim / 2, interleaved: opts.pairing === 'interleaved' };
    ropeInto(this.device, floatOf(x), ptr(out), ptr(x), ptr(positions), ptr(freqs), layout, opts.attentionScaling);
    if (freqs !== invFreq) this.release(freqs);
    return out;
  }

  attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
    const shape = attentionSizes(q, k, v, opts);
    const { B, T, H, Dv } = shape;
    assert(!opts.sinks || opts.sinks.size === H, `attention sinks ${opts.sinks} for ${H} heads`);
    // One dtype for q, k and v: theirs when they agree, else f32 (exact widening, as the CPU computes), and the
    // result rounded to q's dtype.
    const outDType = floatOf(q);
    const dtype = floatOf(k) === outDType && floatOf(v) === outDType ? outDType : 'f32';
    const [qs, ks, vs] = [q, k, v].map((t) => this.asDType(t, dtype)) as [Tensor, Tensor, Tensor];
    const sinks = opts.sinks && this.asDType(opts.sinks, 'f32');
    const out = this.empty([B, T, H, Dv], dtype);
    attentionInto(this.device, dtype, ptr(out), ptr(qs), ptr(ks), ptr(vs), shape, {
      scale: opts.scale, window: opts.window, sinks: sinks ? ptr(sinks) : 0, positions: ptr(opts.positions),
    });
    for (const [made, given] of [[qs, q], [ks, k], [vs, v], [sinks, opts.sinks]] as const) if (made && made !== given) this.release(made);
    if (dtype === outDType) return out;
    const rounded = this.cast(out, outDType);
    this.release(out);
    return rounded;
  }

  siluMul(x: Tensor, clamped?: ClampedGlu): Tensor {
    const F = x.dim(-1) / 2;
    assert(Number.isInteger(F), `siluMul: ${x} has an odd last dim (gate and up halves expected)`);
    const dtype = floatOf(x);
    const out = this.empty([...x.shape.slice(0, -1), F], dtype);
    if (clamped) clampedGluInto(this.device, dtype, ptr(out), ptr(x), clamped.alpha, clamped.limit, F, out.size);
    else siluMulInto(this.device, dtype, ptr(out), ptr(x), F, out.size);
    return out;
  }

  // ---- MoE stages (kernels/moe.ts) ----
  route(logits: Tensor, spec: RouterSpec, selectionBias?: Tensor): { weights: Tensor; experts: Tensor } {
    const [T, E] = [logits.dim(0), logits.dim(1)];
    assert(logits.rank === 2 && (!selectionBias || selectionBias.size === E), `route: ${logits}, bias ${selectionBias}`);
    const weights = this.empty([T, spec.topK], 'f32');
    const experts = this.empty([T, spec.topK], 'i32');
    const bias = selectionBias && this.asDType(selectionBias, 'f32');
    routeInto(this.device, floatOf(logits), { weights: ptr(weights), experts: ptr(experts), logits: ptr(logits), bias: bias ? ptr(bias) : 0, T, E }, spec);
    if (bias && bias !== selectionBias) this.release(bias);
    return { weights, experts };
  }

  sortByExpert(experts: Tensor, numExperts: number): { slots: Tensor; offsets: Tensor } {
    assert(experts.dtype === 'i32', `sortByExpert: ${experts} is not an index tensor`);
    const slots = this.empty([experts.size], 'i32');
    const offsets = this.empty([numExperts + 1], 'i32');
    sortByExpertInto(this.device, ptr(slots), ptr(offsets), ptr(experts), experts.size, numExperts);
    return { slots, offsets };
  }

  gatherRows(x: Tensor, slots: Tensor, topK: number): Tensor {
    assert(slots.dtype === 'i32', `gatherRows: ${slots} is not an index tensor`);
    const D = x.dim(-1);
    const out = this.empty([slots.size, D], floatOf(x));
    gatherRowsInto(this.device, floatOf(x), ptr(out), ptr(x), ptr(slots), topK, slots.size, D);
    return out;
  }

  groupedLinear(x: Tensor, w: Tensor, offsets: Tensor, bias?: Tensor): Tensor {
    return this.grouped('groupedLinear', x, w, offsets, bias, 1, (dtype, args) => groupedLinearInto(this.device, dtype, args));
  }

  /** Fused where kernels/moe.ts can (GEMV or tensor-core kernels with the GLU in their epilogue), else the two ops. */
  groupedGluLinear(x: Tensor, gateUp: Tensor, offsets: Tensor, bias?: Tensor, clamped?: ClampedGlu): Tensor {
    assert(gateUp.rank === 3 && gateUp.dim(1) % 2 === 0, `groupedGluLinear: ${gateUp} is not [E, 2F, Kin] (gate rows, then up rows)`);
    return this.grouped('groupedGluLinear', x, gateUp, offsets, bias, 2, (dtype, args) => groupedGluLinearInto(this.device, dtype, args, clamped));
  }

  scatterAddWeighted(y: Tensor, slots: Tensor, weights: Tensor, numTokens: number): Tensor {
    const D = y.dim(-1);
    const K = weights.dim(-1);
    assert(slots.dtype === 'i32' && slots.size === y.size / D && weights.size === numTokens * K, `scatterAddWeighted: ${y}, ${slots}, ${weights}, ${numTokens} tokens`);
    const dtype = floatOf(y);
    const out = this.empty([numTokens, D], dtype);
    const w = this.asDType(weights, 'f32');
    scatterAddWeightedInto(this.device, dtype, ptr(out), ptr(y), ptr(slots), ptr(w), slots.size, numTokens, K, D);
    if (w !== weights) this.release(w);
    return out;
  }

  // ---- fill (kernels/random.ts) ----
  randomNormal(shape: Shape, dtype: FloatDType, seed: number, std: number): Tensor {
    assert(Number.isSafeInteger(seed) && seed >= 0, `randomNormal: seed ${seed} is not an integer in [0, 2^53)`);
    const out = this.empty(shape, dtype);
    fillRandomInto(this.device, dtype, ptr(out), out.size, seed, std);
    return out;
  }

  // ---- helpers ----
  /** Host transfers cannot be part of a graph: inside a capture they are a bug in the captured body. */
  private noHostTransfer(op: string): void {
    if (this.device.capturing) throw new Error(`internal error: ${op} inside a CUDA graph capture (a captured step may only queue device work)`);
  }

  /** `data` (of the host array type of t's dtype, t.size values) into t, queued on the stream. */
  private copyIn(op: string, t: Tensor, data: HostArray): void {
    this.noHostTransfer(op);
    assert(data instanceof HOST_ARRAY_TYPE[t.dtype] && data.length === t.size, `${op} of ${data.constructor.name}(${data.length}) into ${t}`);
    if (data.byteLength > 0) this.device.driver.copyToDevice(ptr(t), data, data.byteLength, this.device.stream);
  }

  /** A new tensor with uninitialised device memory. */
  private empty(shape: Shape, dtype: DType): Tensor {
    const bytes = sizeOf(shape) * DTYPE_BYTES[dtype];
    const storage = new CudaStorage(this.device.alloc(bytes), bytes);
    this.finalizer.register(storage, storage.block, storage);
    return new Tensor(this, storage, shape, dtype);
  }

  private binary(op: 'add' | 'mul', a: Tensor, b: Tensor): Tensor {
    assert(a.size === b.size && a.shape.join() === b.shape.join(), `${op}: ${a} and ${b} differ in shape`);
    const dtype = floatOf(a);
    if (b.dtype !== dtype) fail('unsupported', `${op} of ${a.dtype} and ${b.dtype} is not implemented on cuda yet; cast one first`);
    const out = this.empty(a.shape, dtype);
    binaryInto(this.device, op, dtype, ptr(out), ptr(a), ptr(b), a.size);
    return out;
  }

  /**
   * The grouped GEMMs' common part: x [N, Kin], w [E, Nout, Kin] (cast to x's dtype), bias [E, Nout] (as f32),
   * offsets i32 [E + 1] checked and turned into device addresses for `run`, whose output is [N, Nout / outDivisor].
   */
  private grouped(
    op: string, x: Tensor, w: Tensor, offsets: Tensor, bias: Tensor | undefined, outDivisor: number,
    run: (dtype: FloatDType, args: GroupedLinearArgs) => void,
  ): Tensor {
    const [E, Nout, Kin] = [w.dim(0), w.dim(1), w.dim(2)];
    assert(w.rank === 3 && x.dim(-1) === Kin && offsets.dtype === 'i32' && offsets.size === E + 1, `${op}: ${x}, ${w}, offsets ${offsets}`);
    assert(!bias || bias.size === E * Nout, `${op} bias ${bias} for ${w}`);
    const dtype = floatOf(x);
    const N = x.size / Kin;
    const out = this.empty([N, Nout / outDivisor], dtype);
    const weights = this.asDType(w, dtype);
    const b = bias && this.asDType(bias, 'f32');
    run(dtype, { out: ptr(out), x: ptr(x), w: ptr(weights), bias: b ? ptr(b) : 0, offsets: ptr(offsets), N, E, Kin, Nout });
    if (weights !== w) this.release(weights);
    if (b && b !== bias) this.release(b);
    return out;
  }

  /** t itself when it already has `dtype`, else a cast copy (the caller releases it). */
  private asDType(t: Tensor, dtype: FloatDType): Tensor {
    return t.dtype === dtype ? t : this.cast(t, dtype);
  }

  /** Copies `count` elements of src from element srcAt to dst at element dstAt (same dtype), on the stream. */
  private copy(dst: Tensor, dstAt: number, src: Tensor, count: number, srcAt = 0): void {
    const size = DTYPE_BYTES[src.dtype];
    if (count === 0) return;
    this.device.driver.copyOnDevice(ptr(dst) + dstAt * size, ptr(src) + srcAt * size, count * size, this.device.stream);
  }
}

function storageOf(t: Tensor): CudaStorage {
  assert(t.storage instanceof CudaStorage, `${t} is not a CUDA tensor`);
  return t.storage;
}

/** The device address of a live tensor. */
function ptr(t: Tensor): number {
  const { block } = storageOf(t);
  assert(block.live, `${t} was used after it was released`);
  return block.pointer;
}

function floatOf(t: Tensor): FloatDType {
  assert(isFloat(t.dtype), `${t} is not a float tensor`);
  return t.dtype;
}
