// Launcher for random.cu: fills a float tensor of the CUDA backend with normal values on the device (benchmarks'
// random weights, with no host upload). Not part of the Backend interface.
// n = elements.
import type { FloatDType } from '../../../core/dtype.ts';
import { assert } from '../../../core/errors.ts';
import type { Tensor } from '../../../core/tensor.ts';
import { CudaStorage } from '../cuda-backend.ts';
import type { CudaDevice } from '../device.ts';
import type { KernelFile } from '../launch.ts';

const SOURCE: KernelFile = { file: 'random.cu' };

/** out[i] = std · N(0, 1), reproducible for a given seed (a non-negative integer below 2^53). */
export function fillRandomInto(dev: CudaDevice, dtype: FloatDType, out: number, n: number, seed: number, std: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `fill_random_${dtype}`, ['ptr', 'u64', 'u64', 'f64']), n, [out, n, seed, std]);
}

/** Fills a CUDA tensor (f32, bf16 or f16) in place with std · N(0, 1), queued on the device's stream. */
export function fillRandom(dev: CudaDevice, t: Tensor, seed: number, std: number): void {
  assert(t.storage instanceof CudaStorage && t.storage.block.live, `fillRandom: ${t} is not a live CUDA tensor`);
  assert(t.dtype !== 'i32', `fillRandom: ${t} is not a float tensor`);
  fillRandomInto(dev, t.dtype, t.storage.block.pointer, t.size, seed, std);
}
