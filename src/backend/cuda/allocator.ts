// The device allocator: device memory is taken from the driver (cuMemAlloc) once and reused, so ops do not pay a
// cuMemAlloc/cuMemFree each. Requests are rounded up to a size class, and a released block goes to its class's
// free list for the next request of that class.
//
// Size classes: powers of two up to 1 MiB (512 B at least); above, 8 classes per doubling (at most 12.5 % unused).
// Reuse is safe with one stream: work that reads a released block was queued before any work that reuses it.
// When the driver runs out of memory, the cached blocks are given back and the allocation is tried once more; if
// that fails too, a DeviceOutOfMemoryError says what was asked, what the device has free, and what to do.
//
// Private pools (CUDA graphs): while a pool is active (a graph is being captured), allocations come from it —
// blocks released inside the capture are reused inside it, anything else is taken fresh from the driver — and
// never from the shared free lists, so a block released by someone else (a GC finalizer) is never baked into a
// graph. The pool's blocks stay reserved for its graph, whatever is released, until freePool hands them all to
// the shared free lists (the graph's replays were queued before any later use, so reuse stays in stream order).
import { assert, MoetsError } from '../../core/errors.ts';
import { CudaCallError } from './ffi.ts';

/** The driver's allocation calls (CudaDriver.memAlloc/memFree/memGetInfo; a fake in tests). */
export interface RawDeviceMemory {
  /** Throws a CudaCallError (CUDA_ERROR_OUT_OF_MEMORY when the device is full). */
  alloc(bytes: number): number;
  free(pointer: number): void;
  /** Free and total bytes of the device (cuMemGetInfo), for the out-of-memory message. */
  info(): { free: number; total: number };
}

/** The device has no room for a block even after the allocator gave its cache back: one line, with what to do. */
export class DeviceOutOfMemoryError extends MoetsError {
  constructor(readonly requested: number, readonly device: { free: number; total: number } | undefined, inUse: number, capturing: boolean) {
    const has = device ? `the GPU has ${formatBytes(device.free)} free of ${formatBytes(device.total)}` : 'cuMemGetInfo failed too';
    const where = capturing ? ' while capturing a CUDA graph (MOETS_CUDA_GRAPHS=0 runs without graphs)' : '';
    super('device', `out of GPU memory${where}: could not allocate ${formatBytes(requested)}; ${has}, moets's tensors ` +
      `and weights hold ${formatBytes(inUse)}; run fewer tokens at once (a smaller --batch, --max-new-tokens or prompt), ` +
      `a smaller model, or another device (--device)`);
    this.name = 'DeviceOutOfMemoryError';
  }
}

/** A block of device memory handed out by the allocator. */
export interface DeviceBlock {
  readonly pointer: number;
  /** Size-class bytes actually reserved (≥ the bytes asked for). */
  readonly bytes: number;
  /** False once released; a block is released once. */
  live: boolean;
  /** The private pool it belongs to; undefined for the shared free lists. */
  readonly pool?: MemoryPool;
}

/** The memory of one captured graph: every block it was given, and those released inside the capture. */
export class MemoryPool {
  /** Size-class bytes of every block the pool took from the driver, by address. */
  readonly owned = new Map<number, number>();
  /** Blocks handed out and not released (they are invalidated when the pool is freed). */
  readonly handedOut = new Set<DeviceBlock>();
  readonly freeLists = new Map<number, number[]>();
  freed = false;

  get bytes(): number {
    let n = 0;
    for (const size of this.owned.values()) n += size;
    return n;
  }
}

const SMALL_LIMIT = 1 << 20;
const MIN_CLASS = 512;

/** The size class for a request of `bytes`. */
export function sizeClass(bytes: number): number {
  if (bytes <= 0) return 0;
  if (bytes <= SMALL_LIMIT) return Math.max(MIN_CLASS, 2 ** Math.ceil(Math.log2(bytes)));
  const step = 2 ** Math.floor(Math.log2(bytes)) / 8;
  return Math.ceil(bytes / step) * step;
}

export class CachingAllocator {
  private readonly freeLists = new Map<number, number[]>();
  /** deviceAllocs/deviceFrees count memory taken from and given back to the driver; reused, requests served from a free list. */
  readonly stats = { deviceAllocs: 0, deviceFrees: 0, reused: 0, bytesInUse: 0, bytesCached: 0 };

  /** Where allocations come from while a graph is captured. */
  private activePool: MemoryPool | undefined;

  constructor(private readonly raw: RawDeviceMemory) {}

  allocate(bytes: number): DeviceBlock {
    const size = sizeClass(bytes);
    if (size === 0) return { pointer: 0, bytes: 0, live: true };
    if (this.activePool) return this.allocateInPool(this.activePool, size);
    let pointer = this.freeLists.get(size)?.pop();
    if (pointer !== undefined) {
      this.stats.reused++;
      this.stats.bytesCached -= size;
    } else {
      pointer = this.allocFromDevice(size, true);
    }
    this.stats.bytesInUse += size;
    return { pointer, bytes: size, live: true };
  }

  release(block: DeviceBlock): void {
    assert(block.live, `device block ${block.pointer} released twice`);
    block.live = false;
    if (block.bytes === 0) return;
    if (block.pool) {
      // Back to its pool, reserved for its graph; reused only inside that pool's capture.
      block.pool.handedOut.delete(block);
      pushTo(block.pool.freeLists, block.bytes, block.pointer);
      return;
    }
    this.stats.bytesInUse -= block.bytes;
    this.stats.bytesCached += block.bytes;
    pushTo(this.freeLists, block.bytes, block.pointer);
  }

  /** From now until endPool, allocations come from a new private pool (see the top of this file). */
  beginPool(): MemoryPool {
    assert(!this.activePool, 'internal error: a private memory pool is already active');
    return (this.activePool = new MemoryPool());
  }

  /** Allocations come from the shared free lists again; the pool keeps its blocks until freePool. */
  endPool(): void {
    this.activePool = undefined;
  }

  /**
   * Hands every block of `pool` to the shared free lists. Blocks still handed out become released (`live` false),
   * so a tensor that still holds one fails on use instead of reading memory someone else now owns.
   */
  freePool(pool: MemoryPool): void {
    assert(pool !== this.activePool && !pool.freed, 'internal error: freeing an active or freed memory pool');
    pool.freed = true;
    for (const block of pool.handedOut) block.live = false;
    for (const [pointer, size] of pool.owned) {
      pushTo(this.freeLists, size, pointer);
      this.stats.bytesInUse -= size;
      this.stats.bytesCached += size;
    }
    pool.owned.clear();
    pool.handedOut.clear();
    pool.freeLists.clear();
  }

  /** A block of the pool's free lists, or a fresh one from the driver (no retry after emptyCache: cuMemFree could synchronise the capturing stream). */
  private allocateInPool(pool: MemoryPool, size: number): DeviceBlock {
    let pointer = pool.freeLists.get(size)?.pop();
    if (pointer !== undefined) {
      this.stats.reused++;
    } else {
      pointer = this.allocFromDevice(size, false);
      this.stats.bytesInUse += size;
      pool.owned.set(pointer, size);
    }
    const block: DeviceBlock = { pointer, bytes: size, live: true, pool };
    pool.handedOut.add(block);
    return block;
  }

  /** Gives every cached (unused) block back to the driver. */
  emptyCache(): void {
    for (const list of this.freeLists.values()) {
      for (const pointer of list) {
        this.raw.free(pointer);
        this.stats.deviceFrees++;
      }
    }
    this.freeLists.clear();
    this.stats.bytesCached = 0;
  }

  /**
   * `size` bytes from the driver. Out of memory: with `retry`, the cache goes back to the driver and the allocation is
   * tried once more; then (or without `retry`: inside a capture) a DeviceOutOfMemoryError. Other errors pass through.
   */
  private allocFromDevice(size: number, retry: boolean): number {
    let pointer: number | undefined;
    try {
      pointer = this.raw.alloc(size);
    } catch (err) {
      if (!isOutOfMemory(err)) throw err;
    }
    if (pointer === undefined && retry && this.stats.bytesCached > 0) {
      this.emptyCache();
      try {
        pointer = this.raw.alloc(size);
      } catch (err) {
        if (!isOutOfMemory(err)) throw err;
      }
    }
    if (pointer === undefined) throw new DeviceOutOfMemoryError(size, this.deviceMemory(), this.stats.bytesInUse, !retry);
    this.stats.deviceAllocs++;
    return pointer;
  }

  /** The device's free and total memory, or undefined when even that query fails. */
  private deviceMemory(): { free: number; total: number } | undefined {
    try {
      return this.raw.info();
    } catch {
      return undefined;
    }
  }
}

function isOutOfMemory(err: unknown): boolean {
  return err instanceof CudaCallError && err.codeName === 'CUDA_ERROR_OUT_OF_MEMORY';
}

/** Bytes for people: B, KiB, MiB or GiB with 3 significant digits. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) {
    bytes /= 1024;
    i++;
  }
  return `${i === 0 ? bytes : bytes.toPrecision(3)} ${units[i]}`;
}

function pushTo(lists: Map<number, number[]>, size: number, pointer: number): void {
  let list = lists.get(size);
  if (!list) lists.set(size, (list = []));
  list.push(pointer);
}
