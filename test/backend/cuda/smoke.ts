// A first look at the CUDA backend on a GPU machine (not part of `npm test`): the device and libraries found,
// NVRTC compile time cold and from the disk cache, cublasGemmEx against the CPU reference and its rate, host cost
// of a launch and of an op, and elementwise/copy bandwidth. Prints a table; writes JSON to $OUT/smoke.json when
// OUT is set.
//   node --import tsx test/backend/cuda/smoke.ts
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../../src/backend/cpu/cpu-backend.ts';
import { CompileCache } from '../../../src/backend/cuda/compile-cache.ts';
import { CudaBackend, CudaStorage } from '../../../src/backend/cuda/cuda-backend.ts';
import { fromF32, type FloatDType } from '../../../src/core/dtype.ts';
import type { Tensor } from '../../../src/core/tensor.ts';
import { Rng } from '../../util/random.ts';

const results: Record<string, unknown> = {};
const rows: [string, string][] = [];
function report(key: string, label: string, value: unknown, shown: string): void {
  results[key] = value;
  rows.push([label, shown]);
  console.log(`${label}: ${shown}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

const cacheDir = mkdtempSync(join(tmpdir(), 'moets-smoke-cache-'));
let t0 = process.hrtime.bigint();
const cuda = CudaBackend.create({ cacheDir });
const dev = cuda.device;
report('open_ms', 'open (load libraries, cuInit, context, stream, cuBLAS)', ms(t0), `${ms(t0).toFixed(1)} ms`);
report('device', 'device', dev.info, `${dev.info.name}, sm_${dev.info.computeCapability}, ${dev.info.multiprocessors} SMs, ` +
  `${(dev.info.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, L2 ${(dev.info.l2CacheBytes / 2 ** 20).toFixed(0)} MiB, driver ${dev.info.driverVersion}`);
report('libraries', 'libraries', { cuda: dev.driver.path, nvrtc: dev.nvrtc.path, cublas: dev.cublas.path },
  `${dev.driver.path} | ${dev.nvrtc.path} | ${dev.cublas.path}`);
report('nvrtc_version', 'NVRTC version', dev.nvrtc.version, dev.nvrtc.version);

// ---- NVRTC: compile elementwise.cu cold (no cache), then through a fresh disk cache: miss, then hit ----------------
const source = readFileSync(new URL('../../../src/backend/cuda/kernels/elementwise.cu', import.meta.url), 'utf8');
const arch = `sm_${dev.info.computeCapability}`;
const compileTimes: number[] = [];
for (let i = 0; i < 3; i++) {
  t0 = process.hrtime.bigint();
  dev.nvrtc.compile(source, 'elementwise.cu', [`--gpu-architecture=${arch}`, '--std=c++17', '-lineinfo']);
  compileTimes.push(ms(t0));
}
report('nvrtc_compile_ms', 'NVRTC compile of elementwise.cu (median of 3)', median(compileTimes), `${median(compileTimes).toFixed(1)} ms`);
const freshCache = mkdtempSync(join(tmpdir(), 'moets-smoke-cache2-'));
const compiler = (s: string, n: string, o: readonly string[]) => dev.nvrtc.compile(s, n, o);
const request = { source, name: 'elementwise.cu', arch, options: ['--std=c++17', '-lineinfo'] };
t0 = process.hrtime.bigint();
const miss = new CompileCache(compiler, dev.nvrtc.version, freshCache).compile(request);
const missMs = ms(t0);
t0 = process.hrtime.bigint();
const hit = new CompileCache(compiler, dev.nvrtc.version, freshCache).compile(request);
const hitMs = ms(t0);
report('cache', 'compile cache: cold (compile + store) / warm (read)', { missMs, hitMs, missCached: miss.cached, hitCached: hit.cached, cubinBytes: hit.cubin.length },
  `${missMs.toFixed(1)} ms / ${hitMs.toFixed(2)} ms (${hit.cubin.length} B cubin, cached=${hit.cached})`);

// ---- GemmEx against the CPU reference -----------------------------------------------------------------------------
const cpu = new CpuBackend();
const rng = new Rng(4242);
for (const dtype of ['f32', 'bf16'] as FloatDType[]) {
  const [M, K, N] = [257, 1031, 513];
  const x = rng.normals(M * K);
  const w = rng.normals(N * K, 1 / Math.sqrt(K));
  const got = await cuda.linear(cuda.upload(fromF32(x, dtype), [M, K], dtype), cuda.upload(fromF32(w, dtype), [N, K], dtype)).read();
  const want = await cpu.linear(cpu.upload(fromF32(x, dtype), [M, K], dtype), cpu.upload(fromF32(w, dtype), [N, K], dtype)).read();
  let d2 = 0;
  let n2 = 0;
  for (let i = 0; i < want.length; i++) {
    d2 += (got[i]! - want[i]!) ** 2;
    n2 += want[i]! ** 2;
  }
  const rel = Math.sqrt(d2 / n2);
  report(`gemm_check_${dtype}`, `cublasGemmEx ${dtype} [${M}, ${K}]·[${N}, ${K}]ᵀ vs CPU, ‖Δ‖/‖ref‖`, rel, rel.toExponential(2));
}

// ---- GemmEx rate on random data ------------------------------------------------------------------------------------
function randomBits(n: number, dtype: FloatDType): Tensor {
  if (dtype === 'f32') return cuda.upload(Float32Array.from({ length: n }, () => Math.random() - 0.5), [n], 'f32');
  const bits = new Uint16Array(n);
  let s = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    bits[i] = (dtype === 'bf16' ? 0x3c00 : 0x2c00) | (s & 0x83ff); // small magnitudes, random sign and mantissa
  }
  return cuda.upload(bits, [n], dtype);
}
for (const [dtype, size] of [['bf16', 8192], ['f32', 4096]] as [FloatDType, number][]) {
  const a = randomBits(size * size, dtype).reshape([size, size]);
  const bm = randomBits(size * size, dtype).reshape([size, size]);
  const times: number[] = [];
  for (let i = 0; i < 13; i++) {
    const t = dev.time(() => cuda.linear(a, bm).dispose());
    if (i >= 3) times.push(t);
  }
  const tflops = (2 * size ** 3) / (median(times) / 1e3) / 1e12;
  report(`gemm_rate_${dtype}`, `cublasGemmEx ${dtype} ${size}³ (median of 10)`, { ms: median(times), tflops }, `${median(times).toFixed(3)} ms, ${tflops.toFixed(0)} TFLOP/s`);
  a.dispose();
  bm.dispose();
}

// ---- host cost of a launch and of an op ---------------------------------------------------------------------------
const small = cuda.upload(new Float32Array(1024).fill(1), [1024], 'f32');
const out = cuda.zeros([1024], 'f32');
const addKernel = dev.kernel({ file: 'elementwise.cu' }, 'add_f32', ['ptr', 'ptr', 'ptr', 'u64']);
const ptrOf = (t: Tensor) => (t.storage as CudaStorage).block.pointer;
dev.synchronize();
t0 = process.hrtime.bigint();
for (let i = 0; i < 5000; i++) dev.launch(addKernel, 4, 256, [ptrOf(out), ptrOf(small), ptrOf(small), 1024]);
const launchUs = (ms(t0) * 1e3) / 5000;
dev.synchronize();
t0 = process.hrtime.bigint();
for (let i = 0; i < 5000; i++) cuda.add(small, small).dispose();
const opUs = (ms(t0) * 1e3) / 5000;
dev.synchronize();
report('launch_us', 'host time per cuLaunchKernel / per backend op (add, alloc + launch + release)', { launchUs, opUs }, `${launchUs.toFixed(2)} µs / ${opUs.toFixed(2)} µs`);

// ---- bandwidth: elementwise add (2 reads + 1 write) and a device-to-device copy ------------------------------------
const n = 256 * 2 ** 20;
const big = randomBits(n, 'bf16');
for (let i = 0; i < 2; i++) cuda.add(big, big).dispose();
const addMs = median(Array.from({ length: 7 }, () => dev.time(() => cuda.add(big, big).dispose())));
const copyMs = median(Array.from({ length: 7 }, () => dev.time(() => cuda.cast(big, 'bf16').dispose())));
report('bandwidth', `add bf16 ${n / 2 ** 20}M elements / device copy of ${(n * 2) / 2 ** 30} GiB, GB/s (bytes read + written)`,
  { addMs, copyMs, addGBs: (3 * 2 * n) / addMs / 1e6, copyGBs: (2 * 2 * n) / copyMs / 1e6 },
  `add ${((3 * 2 * n) / addMs / 1e6).toFixed(0)} GB/s (${addMs.toFixed(3)} ms), copy ${((2 * 2 * n) / copyMs / 1e6).toFixed(0)} GB/s (${copyMs.toFixed(3)} ms)`);
report('allocator', 'allocator', dev.allocator.stats, JSON.stringify(dev.allocator.stats));

console.log('\n| what | result |\n| --- | --- |');
for (const [label, shown] of rows) console.log(`| ${label} | ${shown} |`);
if (process.env['OUT']) writeFileSync(join(process.env['OUT'], 'smoke.json'), JSON.stringify(results, null, 2));
