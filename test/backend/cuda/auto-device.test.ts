// What `--device auto` picks (chooseAuto in src/backend/registry.ts), with fake backends: the CPU while the CUDA
// backend lacks ops; CUDA when it starts; the CPU silently when there is no NVIDIA driver; the CPU with one stderr
// line when a driver is there but CUDA failed; bugs thrown, not hidden.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Backend } from '../../../src/backend/backend.ts';
import { CpuBackend } from '../../../src/backend/cpu/cpu-backend.ts';
import { NOT_YET_ON_CUDA } from '../../../src/backend/cuda/cuda-backend.ts';
import { LibraryNotFoundError } from '../../../src/backend/cuda/libraries.ts';
import { chooseAuto } from '../../../src/backend/registry.ts';
import { MoetsError } from '../../../src/core/errors.ts';

const cpu = new CpuBackend();
const fakeCuda = { name: 'cuda' } as Backend;

function choose(cudaReady: boolean, openCuda: () => Backend): { backend: Backend; warnings: string[]; opened: number } {
  const warnings: string[] = [];
  let opened = 0;
  const backend = chooseAuto({
    cudaReady,
    openCuda: () => (opened++, openCuda()),
    cpu: () => cpu,
    warn: (line) => warnings.push(line),
  });
  return { backend, warnings, opened };
}

describe('--device auto', () => {
  test('is the CPU, without trying CUDA, while the CUDA backend lacks ops', () => {
    const r = choose(false, () => fakeCuda);
    assert.deepEqual([r.backend, r.opened, r.warnings], [cpu, 0, []]);
  });

  test('every backend op has a CUDA kernel, so auto may pick CUDA', () => {
    assert.deepEqual(NOT_YET_ON_CUDA, []);
  });

  test('is CUDA when it starts', () => {
    const r = choose(true, () => fakeCuda);
    assert.deepEqual([r.backend, r.opened, r.warnings], [fakeCuda, 1, []]);
  });

  test('is the CPU, silently, where there is no NVIDIA driver', () => {
    const r = choose(true, () => {
      throw new LibraryNotFoundError('cuda', 'libcuda.so.1 (the NVIDIA driver library) was not found (...)');
    });
    assert.deepEqual([r.backend, r.warnings], [cpu, []]);
  });

  test('is the CPU, saying why in one line, where a driver is there but CUDA failed', () => {
    const failures = [
      new LibraryNotFoundError('nvrtc', "libnvrtc (NVRTC, CUDA's run-time compiler) was not found (...); install it"),
      new LibraryNotFoundError('cuda', 'MOETS_LIBCUDA=/x does not exist; point MOETS_LIBCUDA at libcuda.so.1', true),
      new MoetsError('device', 'CUDA could not start: cuInit failed: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)'),
    ];
    for (const failure of failures) {
      const r = choose(true, () => {
        throw failure;
      });
      assert.equal(r.backend, cpu);
      assert.deepEqual(r.warnings, [`moets: --device auto is using the CPU: ${failure.message}`]);
    }
  });

  test('other errors are bugs and are thrown', () => {
    assert.throws(() => choose(true, () => {
      throw new TypeError('x is undefined');
    }), TypeError);
  });
});
