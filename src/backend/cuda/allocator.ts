// The device allocator: device memory is taken from the driver (cuMemAlloc) once and reused, so ops do not pay a
// cuMemAlloc/cuMemFree each. Requests are rounded up to a size class, and a released block goes to its class's
// free list for the next request of that class.
//
// Size classes: powers of two up to 1 MiB (512 B at least); above, 8 classes per doubling (at most 12.5 % unused).
// Reuse is safe with one stream: work that reads a released block was queued before any work that reuses it.
// When the driver runs out of memory, the cached blocks are given back and the allocation is tried once more.
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

  constructor(private readonly raw: RawDeviceMemory) {}

  allocate(bytes: number): DeviceBlock {
    const size = sizeClass(bytes);
    if (size === 0) return { pointer: 0, bytes: 0, live: true };
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
    this.stats.bytesInUse -= block.bytes;
    this.stats.bytesCached += block.bytes;
    let list = this.freeLists.get(block.bytes);
    if (!list) this.freeLists.set(block.bytes, (list = []));
    list.push(block.pointer);
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
