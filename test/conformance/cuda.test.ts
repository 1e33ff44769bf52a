// The conformance suite on the CUDA backend, plus what only CUDA has: exact agreement with the CPU where the
// arithmetic is the same, memory reuse without cuMemAlloc per op, errors that name the failed call, NVRTC's log,
// captured steps (CUDA graphs: no allocation per replay, host transfers refused inside a capture, the default
// model's decode through graphs bitwise equal to plain steps).
// Where CUDA cannot start (no GPU, no driver, a library missing) everything here is skipped with that one-line
// reason, so CI stays green. Cases that need ops without a CUDA kernel yet (NOT_YET_ON_CUDA) are skipped with
// "<op> not implemented on cuda yet"; every other case runs.
import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.ts';
import { CudaBackend, NOT_YET_ON_CUDA } from '../../src/backend/cuda/cuda-backend.ts';
import { CudaCallError } from '../../src/backend/cuda/ffi.ts';
import { NvrtcCompileError } from '../../src/backend/cuda/nvrtc.ts';
import type { Backend } from '../../src/backend/backend.ts';
import { MoetsError } from '../../src/core/errors.ts';
import { DecodeStepper } from '../../src/generate/decode-step.ts';
import { DEFAULT_MODEL_DIR, loadModel } from '../../src/models/load.ts';
import { Rng } from '../util/random.ts';
import { expectClose, expectExact, floatTensor, quantize, randomTensor, readFloat } from './check.ts';
import { conformanceSuite } from './suite.ts';

/** Cases whose names do not say which missing op they need. */
const ALSO_SKIPPED: Readonly<Record<string, string>> = {};

/** Why a case is skipped on CUDA: the ops without a kernel that its name mentions (before any ':'); undefined: it runs. */
function skipReason(caseName: string): string | undefined {
  const subject = caseName.split(':')[0]!;
  const missing = NOT_YET_ON_CUDA.filter((op) => subject.includes(op));
  return missing.length > 0 ? `${missing.join(', ')} not implemented on cuda yet` : ALSO_SKIPPED[caseName];
}

function openCuda(): { backend?: CudaBackend; reason?: string } {
  try {
    return { backend: CudaBackend.create() };
  } catch (err) {
    if (err instanceof MoetsError && err.kind === 'device') return { reason: err.message };
    throw err;
  }
}

const { backend: cuda, reason } = openCuda();

if (!cuda) {
  test('conformance: cuda backend', { skip: `CUDA cannot run here: ${reason}` }, () => {});
} else {
  const info = cuda.device.info;
  console.log(`# cuda: ${info.name}, sm_${info.computeCapability}, ${info.multiprocessors} SMs, driver ${info.driverVersion}, ` +
    `NVRTC ${cuda.device.nvrtc.version} (${cuda.device.nvrtc.path}), cuBLAS ${cuda.device.cublas.path}`);
  const skip = new Proxy<Record<string, string>>({}, { get: (_, name) => (typeof name === 'string' ? skipReason(name) : undefined) });
  conformanceSuite('cuda', () => cuda, { skip });
  cudaOnlyCases(cuda);
}

function cudaOnlyCases(b: CudaBackend): void {
  const cpu = new CpuBackend();

  /** The same values on both backends. */
  function both(rng: Rng, shape: number[], dtype: 'f32' | 'bf16' | 'f16', std = 1) {
    const values = rng.normals(shape.reduce((n, d) => n * d, 1), std);
    return { gpu: floatTensor(b, values, shape, dtype).t, cpu: floatTensor(cpu, values, shape, dtype).t };
  }

  describe('cuda backend only', () => {
    it('scale, clamp, add and mul give the CPU reference bit for bit in f32, bf16 and f16', async () => {
      const rng = new Rng(9101);
      for (const dtype of ['f32', 'bf16', 'f16'] as const) {
        const x = both(rng, [37, 33], dtype, 4);
        const y = both(rng, [37, 33], dtype, 4);
        const pairs: [string, (k: Backend, v: typeof x.cpu, w: typeof x.cpu) => typeof x.cpu][] = [
          ['scale', (k, v) => k.scale(v, 0.1)], ['clamp', (k, v) => k.clamp(v, -1.3, 2.7)],
          ['add', (k, v, w) => k.add(v, w)], ['mul', (k, v, w) => k.mul(v, w)],
        ];
        for (const [op, run] of pairs) {
          expectExact(await readFloat(run(b, x.gpu, y.gpu), op), await readFloat(run(cpu, x.cpu, y.cpu), op), `${op} ${dtype}`);
        }
      }
      const special = floatTensor(b, [NaN, -Infinity, Infinity, -0, 5, -5], [6], 'f32').t;
      expectExact(await readFloat(b.clamp(special, -1, 1), 'clamp'), [NaN, -1, 1, -0, 1, -1], 'clamp of NaN, ±Inf, -0');
    });

    it('linear with f32 activations and bf16/f16 weights (the weights widened exactly)', async () => {
      const rng = new Rng(9102);
      for (const wDtype of ['bf16', 'f16'] as const) {
        const x = both(rng, [9, 257], 'f32');
        const w = both(rng, [33, 257], wDtype, 0.06);
        const bias = both(rng, [33], 'f32');
        const got = await readFloat(b.linear(x.gpu, w.gpu, bias.gpu), 'linear');
        expectClose(got, await readFloat(cpu.linear(x.cpu, w.cpu, bias.cpu), 'cpu'), 'f32', `linear f32 × ${wDtype}`);
      }
    });

    it('ops reuse released memory: no cuMemAlloc once warm', async () => {
      const x = randomTensor(b, new Rng(9103), [129, 257], 'bf16').t;
      const step = () => {
        const y = b.add(x, x);
        const z = b.sigmoid(y);
        y.dispose();
        z.dispose();
      };
      step();
      const before = { ...b.device.allocator.stats };
      for (let i = 0; i < 200; i++) step();
      await x.read();
      assert.equal(b.device.allocator.stats.deviceAllocs, before.deviceAllocs);
      assert.equal(b.device.allocator.stats.reused, before.reused + 400);
    });

    it('a captured step allocates nothing per replay, and its output follows the inputs written before each', async () => {
      const rng = new Rng(9105);
      const x = randomTensor(b, rng, [129, 257], 'bf16').t;
      const step = await b.capture(async () => b.sigmoid(b.add(b.scale(x, 0.5), x)));
      try {
        await (await step.replay()).read();
        const before = { ...b.device.allocator.stats };
        for (let i = 0; i < 100; i++) await step.replay();
        const { stored } = quantize(rng.normals(129 * 257, 2), 'bf16');
        b.write(x, stored);
        const got = await readFloat(await step.replay(), 'replay');
        assert.equal(b.device.allocator.stats.deviceAllocs, before.deviceAllocs);
        const xCpu = cpu.upload(stored, [129, 257], 'bf16');
        expectClose(got, await readFloat(cpu.sigmoid(cpu.add(cpu.scale(xCpu, 0.5), xCpu)), 'cpu'), 'bf16', 'replay after write');
      } finally {
        step.dispose();
      }
    });

    it('read inside a capture is an internal error, and the stream runs eagerly afterwards', async () => {
      const x = randomTensor(b, new Rng(9106), [33], 'f32').t;
      await assert.rejects(b.capture(async () => { await b.add(x, x).read(); return x; }),
        /^Error: internal error: read inside a CUDA graph capture/);
      assert.equal(b.device.capturing, false);
      expectExact(await readFloat(b.scale(x, 2), 'after'), (await readFloat(x, 'x')).map((v) => v * 2), 'eager after a failed capture');
    });

    it('the default model decodes through CUDA graphs (bf16, batch 2) exactly as through plain steps', async () => {
      const model = await loadModel(DEFAULT_MODEL_DIR, { device: 'cuda', dtype: 'bf16' });
      const rng = new Rng(9107);
      const prompt = Int32Array.from({ length: 2 * 9 }, () => rng.int(model.vocabSize));
      const steps = Array.from({ length: 12 }, () => Int32Array.from({ length: 2 }, () => rng.int(model.vocabSize)));
      const runs: { logits: Float32Array[]; counts: DecodeStepper['counts'] }[] = [];
      for (const graphs of [false, true]) {
        const cache = model.newCache({ batch: 2, capacity: 9 + steps.length });
        const stepper = new DecodeStepper(model, cache, { graphs });
        const logits = [await stepper.step(prompt)];
        for (const ids of steps) logits.push(await stepper.step(ids));
        runs.push({ logits, counts: { ...stepper.counts } });
        stepper.dispose();
        cache.dispose();
      }
      assert.deepEqual(runs[1]!.counts, { replayed: steps.length - 1, plain: 2, captures: 1 });
      runs[1]!.logits.forEach((row, n) => expectExact(row, runs[0]!.logits[n]!, `step ${n}`));
    });

    it('ops without a kernel say so', () => {
      const x = randomTensor(b, new Rng(9104), [3, 8], 'f32').t;
      for (const op of NOT_YET_ON_CUDA) {
        const call = (b[op] as (...args: unknown[]) => unknown).bind(b);
        assert.throws(() => call(x, x, x, x), (err: unknown) => err instanceof MoetsError && err.kind === 'unsupported' &&
          err.message === `${op} is not implemented on cuda yet; use --device cpu`);
      }
    });

    it('a failed driver call names the call and the CUDA error', () => {
      assert.throws(() => b.device.driver.memAlloc(2 ** 52), (err: unknown) => err instanceof CudaCallError &&
        /^cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY \(out of memory; 4503599627370496 bytes\)$/.test(err.message));
    });

    it('a failed compile carries the NVRTC log', () => {
      const source = 'extern "C" __global__ void broken_f32(float* out) { out[0] = no_such_name; }';
      assert.throws(() => b.device.nvrtc.compile(source, 'broken.cu', [`--gpu-architecture=sm_${b.device.info.computeCapability}`]),
        (err: unknown) => err instanceof NvrtcCompileError && /NVRTC_ERROR_COMPILATION/.test(err.message) && /no_such_name/.test(err.log));
    });
  });
}
