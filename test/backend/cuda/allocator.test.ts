// The CUDA backend's caching allocator (src/backend/cuda/allocator.ts) over a fake device with a fixed capacity:
// size classes, reuse without new driver allocations, the counters, giving the cache back when the device runs
// out of memory (and the one-line error when even that is not enough), and the private pools of captured graphs.
// No GPU needed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CachingAllocator, DeviceOutOfMemoryError, formatBytes, sizeClass, type RawDeviceMemory } from '../../../src/backend/cuda/allocator.ts';
import { CudaCallError } from '../../../src/backend/cuda/ffi.ts';
import { MoetsError } from '../../../src/core/errors.ts';
import { Rng } from '../../util/random.ts';

type FakeDevice = RawDeviceMemory & { live: Map<number, number>; calls: string[]; failNext?: CudaCallError | undefined };

/**
 * A device of `capacity` bytes: allocations are address ranges; one past capacity throws the driver's
 * CUDA_ERROR_OUT_OF_MEMORY, and `failNext` makes the next allocation throw that error instead.
 */
function fakeDevice(capacity: number): FakeDevice {
  const live = new Map<number, number>();
  const calls: string[] = [];
  let next = 0x7f0000000000;
  const used = () => [...live.values()].reduce((a, b) => a + b, 0);
  const device: FakeDevice = {
    live, calls,
    alloc(bytes) {
      const failure = device.failNext;
      if (failure) {
        device.failNext = undefined;
        throw failure;
      }
      if (used() + bytes > capacity) throw new CudaCallError('cuMemAlloc', 2, 'CUDA_ERROR_OUT_OF_MEMORY', `out of memory; ${bytes} bytes`);
      const pointer = next;
      next += bytes;
      live.set(pointer, bytes);
      calls.push(`alloc ${bytes}`);
      return pointer;
    },
    free(pointer) {
      assert.ok(live.delete(pointer), `free of unknown pointer ${pointer}`);
      calls.push('free');
    },
    info: () => ({ free: capacity - used(), total: capacity }),
  };
  return device;
}

describe('cuda allocator', () => {
  test('size classes: powers of two to 1 MiB, then 8 per doubling', () => {
    const MiB = 1 << 20;
    const table: [number, number][] = [
      [0, 0], [1, 512], [512, 512], [513, 1024], [4000, 4096], [MiB - 1, MiB], [MiB, MiB],
      [MiB + 1, MiB + MiB / 8], [3 * MiB, 3 * MiB], [3 * MiB + 1, 3 * MiB + MiB / 4], [2 ** 34 + 1, 2 ** 34 + 2 ** 31],
    ];
    for (const [bytes, size] of table) assert.equal(sizeClass(bytes), size, `sizeClass(${bytes})`);
    const rng = new Rng(11);
    for (let i = 0; i < 2000; i++) {
      const bytes = 1 + Math.floor(2 ** (rng.next() * 36));
      const size = sizeClass(bytes);
      assert.ok(size >= bytes && Number.isSafeInteger(size), `sizeClass(${bytes}) = ${size}`);
      if (bytes > MiB) assert.ok(size <= bytes * 1.125, `sizeClass(${bytes}) = ${size} wastes more than 12.5 %`);
      assert.equal(sizeClass(size), size, `a class size is its own class (${size})`);
    }
  });

  test('a released block is reused for the next request of its class, without the driver', () => {
    const device = fakeDevice(1 << 30);
    const a = new CachingAllocator(device);
    const first = a.allocate(1000);
    const other = a.allocate(5000);
    assert.notEqual(first.pointer, other.pointer);
    a.release(first);
    const again = a.allocate(700);
    assert.equal(again.pointer, first.pointer);
    assert.equal(again.bytes, 1024);
    for (let i = 0; i < 100; i++) a.release(a.allocate(600 + i));
    assert.deepEqual(device.calls, ['alloc 1024', 'alloc 8192', 'alloc 1024']);
    assert.deepEqual(a.stats, { deviceAllocs: 3, deviceFrees: 0, reused: 100, bytesInUse: 1024 + 8192, bytesCached: 1024 });
  });

  test('zero bytes take no device memory; a block released twice is a bug', () => {
    const device = fakeDevice(1 << 20);
    const a = new CachingAllocator(device);
    const empty = a.allocate(0);
    assert.deepEqual([empty.pointer, empty.bytes], [0, 0]);
    a.release(empty);
    const block = a.allocate(10);
    a.release(block);
    assert.throws(() => a.release(block), /released twice/);
    assert.equal(device.calls.length, 1);
  });

  test('out of device memory: the cached blocks go back to the driver and the allocation is tried again', () => {
    const device = fakeDevice(4096);
    const a = new CachingAllocator(device);
    const small = [a.allocate(1024), a.allocate(1024), a.allocate(1024)];
    for (const b of small) a.release(b);
    const big = a.allocate(2048);
    assert.equal(device.live.size, 1);
    assert.equal(device.live.get(big.pointer), 2048);
    assert.deepEqual(a.stats, { deviceAllocs: 4, deviceFrees: 3, reused: 0, bytesInUse: 2048, bytesCached: 0 });
    assert.throws(() => a.allocate(4096), DeviceOutOfMemoryError, 'nothing cached: the error goes to the caller');
    assert.equal(a.stats.bytesInUse, 2048, 'a failed allocation is not counted');
  });

  test('still out of memory after the retry: one line saying what was asked, what is free, and what to do', () => {
    const MiB = 1 << 20;
    const device = fakeDevice(1024 * MiB);
    const a = new CachingAllocator(device);
    const held = a.allocate(640 * MiB);
    a.release(a.allocate(256 * MiB)); // cached: given back before the retry, which still fails
    let caught: unknown;
    try {
      a.allocate(384 * MiB + 1);
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof DeviceOutOfMemoryError && caught instanceof MoetsError && caught.kind === 'device', `got ${caught}`);
    assert.equal(caught.message, 'out of GPU memory: could not allocate 416 MiB; the GPU has 384 MiB free of 1.00 GiB, moets\'s ' +
      'tensors and weights hold 640 MiB; run fewer tokens at once (a smaller --batch, --max-new-tokens or prompt), a smaller ' +
      'model, or another device (--device)');
    assert.ok(!caught.message.includes('\n'));
    assert.equal(caught.requested, 416 * MiB);
    assert.deepEqual(caught.device, { free: 384 * MiB, total: 1024 * MiB });
    assert.deepEqual(device.calls.filter((c) => c === 'free'), ['free'], 'the cache went back to the driver once');
    assert.deepEqual(a.stats, { deviceAllocs: 2, deviceFrees: 1, reused: 0, bytesInUse: 640 * MiB, bytesCached: 0 });
    a.release(held);
    assert.equal(a.allocate(384 * MiB + 1).bytes, 416 * MiB, 'the allocator still works afterwards');
  });

  test('a driver error other than out-of-memory passes through, and the cache stays', () => {
    const device = fakeDevice(1 << 20);
    const a = new CachingAllocator(device);
    a.release(a.allocate(1000));
    const failure = new CudaCallError('cuMemAlloc', 201, 'CUDA_ERROR_INVALID_CONTEXT', '4096 bytes');
    device.failNext = failure;
    assert.throws(() => a.allocate(4000), (err: unknown) => err === failure);
    assert.equal(a.stats.bytesCached, 1024);
    assert.ok(!device.calls.includes('free'));
  });

  test('out of memory inside a capture: no retry (cuMemFree could synchronise the capturing stream), and the line says so', () => {
    const device = fakeDevice(8192);
    const a = new CachingAllocator(device);
    a.release(a.allocate(4096)); // cached in the shared lists, out of the pool's reach
    a.beginPool();
    a.allocate(2048);
    assert.throws(() => a.allocate(4096), (err: unknown) => err instanceof DeviceOutOfMemoryError &&
      /^out of GPU memory while capturing a CUDA graph \(MOETS_CUDA_GRAPHS=0 runs without graphs\): could not allocate 4.00 KiB; the GPU has 2.00 KiB free of 8.00 KiB/.test(err.message));
    a.endPool();
    assert.ok(!device.calls.includes('free'), 'nothing was freed during the capture');
  });

  test('formatBytes', () => {
    assert.deepEqual([0, 512, 1024, 1536, 402653184, 2 ** 40 * 1.5].map(formatBytes), ['0 B', '512 B', '1.00 KiB', '1.50 KiB', '384 MiB', '1.50 TiB']);
  });

  test('a private pool: its own blocks only, reuse inside it, reserved until freed, then shared', () => {
    const device = fakeDevice(1 << 30);
    const a = new CachingAllocator(device);
    const shared = a.allocate(1000);
    a.release(shared); // cached in the shared free list
    const pool = a.beginPool();
    const first = a.allocate(1000);
    assert.notEqual(first.pointer, shared.pointer, 'a capture never takes a block from the shared free lists');
    const outside = a.allocate(4000);
    a.release(first); // released inside the capture
    const again = a.allocate(900);
    assert.equal(again.pointer, first.pointer, 'reused inside the same capture');
    a.endPool();
    // A block released outside (a GC finalizer during the capture) went to the shared lists, never into the pool.
    assert.ok(![...pool.owned.keys()].includes(shared.pointer));
    a.release(again); // released after the capture: stays the pool's
    const eager = [a.allocate(1000), a.allocate(1000)];
    assert.ok(eager.every((b) => !pool.owned.has(b.pointer)), 'no eager allocation gets a block of a live pool');
    assert.equal(pool.bytes, 1024 + 4096);
    a.freePool(pool);
    assert.equal(outside.live, false, 'blocks still held when the pool is freed are released with it');
    const after = [a.allocate(1000), a.allocate(4000)];
    assert.deepEqual(after.map((b) => b.pointer).sort(), [first.pointer, outside.pointer].sort(), 'the pool\'s blocks serve everyone now');
    assert.throws(() => a.freePool(pool), /freeing an active or freed memory pool/);
    assert.deepEqual(device.calls, ['alloc 1024', 'alloc 1024', 'alloc 4096', 'alloc 1024']);
  });
});
