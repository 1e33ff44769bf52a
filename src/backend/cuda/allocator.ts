// The device allocator: device memory is taken from the driver (cuMemAlloc) once and reused, so ops do not pay a
// cuMemAlloc/cuMemFree each. Requests are rounded up to a size class, and a released block goes to its class's
// free list for the next request of that class.
//
// Size classes: powers of two up to 1 MiB (512 B at least); above, 8 classes per doubling (at most 12.5 % unused).
// Reuse is safe with one stream: work that reads a released block was queued before any work that reuses it.
// When the driver runs out of memory, the cached blocks are given back and the allocation is tried once more.
//
// Private pools (CUDA graphs): while a pool is active (a graph is being captured), allocations come from it —
// blocks released inside the capture are reused inside it, anything else is taken fresh from the driver — and
// never from the shared free lists, so a block released by someone else (a GC finalizer) is never baked into a
// graph. The pool's blocks stay reserved for its graph, whatever is released, until freePool hands them all to
// the shared free lists (the graph's replays were queued before any later use, so reuse stays in stream order).
import { assert } from '../../core/errors.ts';

/** The driver's allocation calls (CudaDriver.memAlloc/memFree; a fake in tests). */
export interface RawDeviceMemory {
  alloc(bytes: number): number;
  free(pointer: number): void;
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
      pointer = this.allocFromDevice(size);
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
      pointer = this.raw.alloc(size);
      this.stats.deviceAllocs++;
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

  private allocFromDevice(size: number): number {
    let pointer: number;
    try {
      pointer = this.raw.alloc(size);
    } catch (err) {
      if (this.stats.bytesCached === 0) throw err;
      this.emptyCache();
      pointer = this.raw.alloc(size);
    }
    this.stats.deviceAllocs++;
    return pointer;
  }
}

function pushTo(lists: Map<number, number[]>, size: number, pointer: number): void {
  let list = lists.get(size);
  if (!list) lists.set(size, (list = []));
  list.push(pointer);
}
