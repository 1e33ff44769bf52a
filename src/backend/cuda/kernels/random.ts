// Launcher for random.cu: fills device memory with normal values (Backend.randomNormal on CUDA).
// n = elements.
import type { FloatDType } from '../../../core/dtype.ts';
import type { CudaDevice } from '../device.ts';
import type { KernelFile } from '../launch.ts';

const SOURCE: KernelFile = { file: 'random.cu' };

/** out[i] = std · N(0, 1) for i < n, element i of the stream `seed` (a non-negative integer below 2^53). */
export function fillRandomInto(dev: CudaDevice, dtype: FloatDType, out: number, n: number, seed: number, std: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `fill_random_${dtype}`, ['ptr', 'u64', 'u64', 'f64']), n, [out, n, seed, std]);
}
