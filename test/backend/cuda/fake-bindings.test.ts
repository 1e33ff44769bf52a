// The CUDA backend's koffi bindings against a fake of the CUDA libraries (fake-cuda.c, built here with the system C
// compiler): every declaration binds, arguments arrive in the order and layout the C functions take, outputs come
// back, and failures name the call and the library's error; graph capture and replay (the fake records and replays
// launches, copies and memsets). No GPU needed; skipped when there is no C compiler.
// (The real libraries are exercised by test/conformance/cuda.test.ts on a GPU machine.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { CpuBackend } from '../../../src/backend/cpu/cpu-backend.ts';
import { CudaBackend, CudaStorage } from '../../../src/backend/cuda/cuda-backend.ts';
import type { Tensor } from '../../../src/core/tensor.ts';
import { CudaCallError } from '../../../src/backend/cuda/ffi.ts';
import { NvrtcCompileError } from '../../../src/backend/cuda/nvrtc.ts';
import { Rng } from '../../util/random.ts';

const work = mkdtempSync(join(tmpdir(), 'moets-fake-cuda-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Builds fake-cuda.c into a shared library; undefined (and why) when no C compiler works here. */
function buildFake(): { lib?: string; why?: string } {
  const lib = join(work, 'libfakecuda.so');
  const source = fileURLToPath(new URL('./fake-cuda.c', import.meta.url));
  const r = spawnSync(process.env['CC'] ?? 'cc', ['-shared', '-fPIC', '-O1', '-o', lib, source], { encoding: 'utf8' });
  if (r.error || r.status !== 0 || !existsSync(lib)) return { why: `no working C compiler (${r.error?.message ?? r.stderr.split('\n')[0]})` };
  return { lib };
}

const { lib, why } = buildFake();

/** A CUDA tensor's device address. */
function ptrOf(t: Tensor): number {
  assert.ok(t.storage instanceof CudaStorage);
  return t.storage.block.pointer;
}

describe('cuda bindings against a fake CUDA', { skip: why ?? false }, () => {
  const cacheDir = join(work, 'cache');
  const env = { MOETS_LIBCUDA: lib!, MOETS_LIBNVRTC: lib!, MOETS_LIBCUBLASLT: lib!, MOETS_LIBCUBLAS: lib! };
  const open = () => CudaBackend.create({ cacheDir, search: { env, root: '/' } });

  test('opening reads the device, and every library comes from its variable', () => {
    const b = open();
    assert.deepEqual(b.device.info, {
      ordinal: 0, name: 'Fake GPU', computeCapability: 90, multiprocessors: 132, totalMemoryBytes: 80 * 2 ** 30,
      l2CacheBytes: 48 * 2 ** 20, maxSharedMemoryPerBlock: 232448, driverVersion: 13000,
    });
    assert.deepEqual([b.device.driver.path, b.device.nvrtc.path, b.device.cublas.path], [lib, lib, lib]);
    assert.equal(b.device.nvrtc.version, '13.0');
    assert.deepEqual(b.device.driver.memGetInfo(), { free: 79 * 2 ** 30, total: 80 * 2 ** 30 });
    assert.equal(b.device.time(() => {}), 0.25);
  });

  test('copies to, on and from the device move the right bytes', async () => {
    const b = open();
    const f32 = Float32Array.from({ length: 24 }, (_, i) => i * 1.5 - 7);
    const t = b.upload(f32, [6, 4], 'f32');
    assert.deepEqual(await t.read(), f32);
    assert.deepEqual(await b.upload(Uint16Array.of(0x3f80, 0xc000, 0x7f80), [3], 'bf16').read(), Float32Array.of(1, -2, Infinity));
    assert.deepEqual(await b.upload(Int32Array.of(-1, 2 ** 31 - 1), [2], 'i32').read(), Int32Array.of(-1, 2 ** 31 - 1));
    assert.deepEqual(await b.zeros([5], 'f16').read(), new Float32Array(5));
    assert.deepEqual(await b.uploadBytes(new Uint8Array(f32.buffer, 16, 32), 'f32', [8], 'f32').read(), f32.subarray(4, 12));
    assert.deepEqual(await b.sliceRows(t, 2, 3).read(), f32.subarray(8, 20));
    const dst = b.zeros([6, 4], 'f32');
    b.copyRows(dst, b.sliceRows(t, 0, 2), 3);
    assert.deepEqual(await dst.read(), Float32Array.from({ length: 24 }, (_, i) => (i >= 12 && i < 20 ? f32[i - 12]! : 0)));
  });

  test('a kernel compiled through the disk cache runs with its arguments in place', async () => {
    const b = open();
    const x = b.upload(Float32Array.of(1, 2, 3, 4, 5), [5], 'f32');
    const y = b.upload(Float32Array.of(10, 20, 30, 40, 50), [5], 'f32');
    assert.deepEqual(await b.add(x, y).read(), Float32Array.of(11, 22, 33, 44, 55));
    assert.equal(readdirSync(join(cacheDir, 'kernels')).filter((f) => f.endsWith('.cubin')).length, 1);
  });

  test('cublasGemmEx gets linear\'s operands, transposes and leading dimensions right', async () => {
    const b = open();
    const cpu = new CpuBackend();
    const rng = new Rng(515);
    const [M, K, N] = [5, 7, 3];
    const x = rng.normals(M * K);
    const w = rng.normals(N * K);
    const got = await b.linear(b.upload(x, [M, K], 'f32'), b.upload(w, [N, K], 'f32')).read();
    const want = await cpu.linear(cpu.upload(x, [M, K], 'f32'), cpu.upload(w, [N, K], 'f32')).read();
    assert.deepEqual(got, want);
  });

  test('a captured step records, then every replay runs it on the inputs written before it', async () => {
    const b = open();
    const x = b.upload(Float32Array.of(1, 2, 3, 4), [4], 'f32');
    const y = b.upload(Float32Array.of(10, 20, 30, 40), [4], 'f32');
    const cache = b.zeros([3, 4], 'f32');
    let released = 0;
    const inPool: number[] = [];
    const step = await b.capture(async () => {
      const sum = b.add(x, y); // x + y, in the graph's pool
      b.copyRows(cache, sum.reshape([1, 4]), 2); // a device-to-device copy node
      const zero = b.zeros([4], 'f32'); // a memset node
      const out = b.add(sum, zero);
      inPool.push(ptrOf(sum), ptrOf(zero), ptrOf(out));
      released = ptrOf(sum);
      sum.dispose(); // released inside the capture: its block may serve the capture again, nothing else
      return out;
    });
    assert.deepEqual(await cache.read(), new Float32Array(12), 'capturing runs nothing');
    assert.deepEqual(await (await step.replay()).read(), Float32Array.of(11, 22, 33, 44));
    b.write(x, Float32Array.of(-1, -2, -3, -4));
    const out = await step.replay();
    assert.deepEqual(await out.read(), Float32Array.of(9, 18, 27, 36));
    assert.deepEqual((await cache.read()).subarray(8), Float32Array.of(9, 18, 27, 36));
    assert.equal(await step.replay(), out, 'every replay gives the same output tensor');
    // The step's memory stays its own: eager ops allocate elsewhere until it is disposed.
    const eager = Array.from({ length: 4 }, () => b.add(x, y));
    assert.ok(eager.every((t) => ![released, ptrOf(out)].includes(ptrOf(t))), 'an eager op got a block of the step');
    step.dispose();
    await assert.rejects(async () => out.read(), /used after it was released/);
    const later = Array.from({ length: 3 }, () => b.add(x, y));
    assert.deepEqual(later.map(ptrOf).sort(), [...inPool].sort(), 'once disposed, the step\'s blocks serve eager ops');
  });

  test('inside a capture, host transfers fail with an internal error and the capture is abandoned', async () => {
    const b = open();
    const x = b.upload(Float32Array.of(1, 2), [2], 'f32');
    for (const [what, body] of [
      ['read', async () => { await b.add(x, x).read(); return x; }],
      ['upload', async () => b.upload(Float32Array.of(1), [1], 'f32')],
      ['write', async () => { b.write(x, Float32Array.of(5, 6)); return x; }],
    ] as const) {
      await assert.rejects(b.capture(body), (err: unknown) => err instanceof Error &&
        err.message === `internal error: ${what} inside a CUDA graph capture (a captured step may only queue device work)`);
      assert.equal(b.device.capturing, false, `${what}: the capture was ended`);
    }
    assert.deepEqual(await b.add(x, x).read(), Float32Array.of(2, 4), 'the stream runs eagerly again');
  });

  test('failures name the call and the library\'s error', () => {
    const b = open();
    const x = b.upload(new Float32Array(6), [2, 3], 'f32');
    const expectCall = (body: () => unknown, message: string) =>
      assert.throws(body, (err: unknown) => err instanceof CudaCallError && err.kind === 'device' && err.message === message);
    expectCall(() => b.device.driver.memAlloc(2 ** 40), `cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory; ${2 ** 40} bytes)`);
    expectCall(() => b.linear(x, x.reshape([2, 3]), b.upload(new Float32Array(2), [2], 'f32')),
      'cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND (named symbol not found; broadcast_rows_f32)');
    const xb = b.upload(new Uint16Array(6), [2, 3], 'bf16');
    expectCall(() => b.linear(xb, xb), 'cublasGemmEx failed: CUBLAS_STATUS_NOT_SUPPORTED (bf16 M=2 N=2 K=3)');
    assert.throws(() => b.device.nvrtc.compile('int a = no_such_name;', 'bad.cu', ['--gpu-architecture=sm_90']),
      (err: unknown) => err instanceof NvrtcCompileError &&
        err.message === 'nvrtcCompileProgram(bad.cu, --gpu-architecture=sm_90) failed: NVRTC_ERROR_COMPILATION\nbad.cu(1): error: identifier "no_such_name" is undefined' &&
        err.log === 'bad.cu(1): error: identifier "no_such_name" is undefined');
  });
});
