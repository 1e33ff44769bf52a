// The CUDA backend: tensors in device memory from the caching allocator, every op queued on one stream, only
// `read` waiting for results. Elementwise ops run the NVRTC-compiled kernels of kernels/elementwise.cu, `linear`
// runs cublasGemmEx. Ops without a CUDA kernel yet (NOT_YET_ON_CUDA) throw MoetsError('unsupported').
//
// Memory: `release` (Tensor.dispose) gives a tensor's block back at once; a tensor dropped without it gives its
// block back when the garbage collector finalises its storage. A view (reshape) shares its tensor's storage, so
// disposing a tensor while a view of it is still in use is a bug in the caller.
import type { Backend } from '../backend.ts';
import { DTYPE_BYTES, isFloat, type DType, type FloatDType, type HostArray } from '../../core/dtype.ts';
import { assert, fail } from '../../core/errors.ts';
import { sizeOf, Tensor, type Shape, type Storage } from '../../core/tensor.ts';
import { widen } from '../cpu/widen.ts';
import type { DeviceBlock } from './allocator.ts';
import { CudaDevice, type CudaDeviceOptions } from './device.ts';
import {
  binaryInto, broadcastRowsInto, castInto, clampInto, scaleInto, scaleRowsInto, sigmoidInto,
} from './kernels/elementwise.ts';

/** Backend ops with no CUDA kernel yet. */
export const NOT_YET_ON_CUDA: readonly (keyof Backend)[] = [
  'softmax', 'sliceColumns', 'concatHeads', 'embedding', 'rmsNorm', 'rope', 'attention', 'siluMul',
  'route', 'sortByExpert', 'gatherRows', 'groupedLinear', 'scatterAddWeighted',
];

function notYet(op: keyof Backend): never {
  return fail('unsupported', `${op} is not implemented on cuda yet; use --device cpu`);
}

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
    const expected = dtype === 'f32' ? Float32Array : dtype === 'i32' ? Int32Array : Uint16Array;
    assert(data instanceof expected && data.length === sizeOf(shape), `upload of ${data.constructor.name}(${data.length}) as ${dtype}[${shape}]`);
    const t = this.empty(shape, dtype);
    if (data.byteLength > 0) this.device.driver.copyToDevice(ptr(t), data, data.byteLength, this.device.stream);
    return t;
  }

  uploadBytes(bytes: Uint8Array, sourceDType: DType, shape: Shape, dtype: DType): Tensor {
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
    const host = t.dtype === 'f32' ? new Float32Array(t.size) : t.dtype === 'i32' ? new Int32Array(t.size) : new Uint16Array(t.size);
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

  softmax(): Tensor {
    return notYet('softmax');
  }

  sliceRows(x: Tensor, start: number, count: number): Tensor {
    const rowSize = x.size / x.dim(0);
    assert(start >= 0 && count >= 0 && start + count <= x.dim(0), `sliceRows ${start}+${count} of ${x}`);
    const out = this.empty([count, ...x.shape.slice(1)], x.dtype);
    this.copy(out, 0, x, count * rowSize, start * rowSize);
    return out;
  }

  sliceColumns(): Tensor {
    return notYet('sliceColumns');
  }

  concatHeads(): Tensor {
    return notYet('concatHeads');
  }

  copyRows(dst: Tensor, src: Tensor, at: number): void {
    const rowSize = dst.size / dst.dim(0);
    assert(dst.dtype === src.dtype && src.size % rowSize === 0, `copyRows ${src} into ${dst}`);
    assert(at >= 0 && at * rowSize + src.size <= dst.size, `copyRows at ${at}: ${src} into ${dst}`);
    this.copy(dst, at * rowSize, src, src.size);
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
    if (b) broadcastRowsInto(this.device, dtype, ptr(out), ptr(b), N, M * N);
    this.device.cublas.linear(ptr(out), ptr(x), ptr(weights), dtype, { M, N, K }, b !== undefined);
    if (weights !== w) this.release(weights);
    if (b && b !== bias) this.release(b);
    return out;
  }

  embedding(): Tensor {
    return notYet('embedding');
  }

  rmsNorm(): Tensor {
    return notYet('rmsNorm');
  }

  rope(): Tensor {
    return notYet('rope');
  }

  attention(): Tensor {
    return notYet('attention');
  }

  siluMul(): Tensor {
    return notYet('siluMul');
  }

  // ---- MoE stages ----
  route(): { weights: Tensor; experts: Tensor } {
    return notYet('route');
  }

  sortByExpert(): { slots: Tensor; offsets: Tensor } {
    return notYet('sortByExpert');
  }

  gatherRows(): Tensor {
    return notYet('gatherRows');
  }

  groupedLinear(): Tensor {
    return notYet('groupedLinear');
  }

  scatterAddWeighted(): Tensor {
    return notYet('scatterAddWeighted');
  }

  // ---- helpers ----
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
