// Tensor: a shape, a dtype and a handle to storage that belongs to one backend (device).
// Nothing outside a backend reads a tensor's storage: host code asks for values with `await t.read()`.
// Tensors are contiguous, row-major. `reshape` returns a view that shares the storage.
import type { Backend } from '../backend/backend.ts';
import type { DType } from './dtype.ts';
import { assert } from './errors.ts';

export type Shape = readonly number[];

/** Backend-owned memory. Each backend defines what is inside; shared code treats it as opaque. */
export interface Storage {
  readonly byteLength: number;
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * `next`, after disposing `old`, the tensor it was computed from: the op reading `old` is already queued, so its
 * memory can go back at once (on a GPU the stream orders the reuse).
 */
export function replaced(old: Tensor, next: Tensor): Tensor {
  old.dispose();
  return next;
}

export class Tensor {
  private disposed = false;

  constructor(
    readonly backend: Backend,
    readonly storage: Storage,
    readonly shape: Shape,
    readonly dtype: DType,
    /** True when this tensor is a view (reshape) of another's storage and must not release it. */
    readonly isView = false,
  ) {}

  get size(): number {
    return sizeOf(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Size of dimension `i`; negative counts from the end. */
  dim(i: number): number {
    const d = this.shape[i < 0 ? this.shape.length + i : i];
    assert(d !== undefined, `dimension ${i} of shape [${this.shape.join(', ')}]`);
    return d;
  }

  /** A view with another shape of the same element count; -1 stands for the remaining size. */
  reshape(shape: Shape): Tensor {
    const known = shape.reduce((n, d) => (d === -1 ? n : n * d), 1);
    const resolved = shape.map((d) => (d === -1 ? this.size / known : d));
    assert(sizeOf(resolved) === this.size, `reshape [${this.shape.join(', ')}] to [${shape.join(', ')}]`);
    return new Tensor(this.backend, this.storage, resolved, this.dtype, true);
  }

  /** Copy the values to the host: floats widen to f32, indices stay i32. */
  read(): Promise<Float32Array | Int32Array> {
    return this.backend.read(this);
  }

  /** Give the storage back to the backend now instead of waiting for the garbage collector. */
  dispose(): void {
    if (this.disposed || this.isView) return;
    this.disposed = true;
    this.backend.release(this);
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(', ')}] on ${this.backend.name})`;
  }
}
