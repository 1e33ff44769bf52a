// Launchers for elementwise.cu (the "launchers" half of that file): one function per kernel family, taking device
// addresses and element counts, choosing the kernel by dtype and queueing it on the device's stream.
// n = elements; cols = row length (D) for the row-wise kernels.
import type { FloatDType } from '../../../core/dtype.ts';
import type { CudaDevice } from '../device.ts';
import type { ArgKind, KernelFile } from '../launch.ts';

const SOURCE: KernelFile = { file: 'elementwise.cu' };

const OUT_IN_N: readonly ArgKind[] = ['ptr', 'ptr', 'u64'];
const OUT_IN_IN_N: readonly ArgKind[] = ['ptr', 'ptr', 'ptr', 'u64'];

/** out = a + b or a * b, elementwise. */
export function binaryInto(dev: CudaDevice, op: 'add' | 'mul', dtype: FloatDType, out: number, a: number, b: number, n: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `${op}_${dtype}`, OUT_IN_IN_N), n, [out, a, b, n]);
}

/** out = x * s. */
export function scaleInto(dev: CudaDevice, dtype: FloatDType, out: number, x: number, s: number, n: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `scale_${dtype}`, ['ptr', 'ptr', 'f64', 'u64']), n, [out, x, s, n]);
}

/** out [R, cols] = x [R, cols] with row r times s[r]; s is f32 [R]. */
export function scaleRowsInto(dev: CudaDevice, dtype: FloatDType, out: number, x: number, s: number, cols: number, n: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `scale_rows_${dtype}`, ['ptr', 'ptr', 'ptr', 'u64', 'u64']), n, [out, x, s, cols, n]);
}

export function sigmoidInto(dev: CudaDevice, dtype: FloatDType, out: number, x: number, n: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `sigmoid_${dtype}`, OUT_IN_N), n, [out, x, n]);
}

/** out = min(max(x, lo), hi). */
export function clampInto(dev: CudaDevice, dtype: FloatDType, out: number, x: number, lo: number, hi: number, n: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `clamp_${dtype}`, ['ptr', 'ptr', 'f64', 'f64', 'u64']), n, [out, x, lo, hi, n]);
}

/** out [n / cols, cols] = row [cols] repeated. */
export function broadcastRowsInto(dev: CudaDevice, dtype: FloatDType, out: number, row: number, cols: number, n: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `broadcast_rows_${dtype}`, ['ptr', 'ptr', 'u64', 'u64']), n, [out, row, cols, n]);
}

/** out (to) = x (from), rounded to nearest even. */
export function castInto(dev: CudaDevice, from: FloatDType, to: FloatDType, out: number, x: number, n: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `cast_${from}_${to}`, OUT_IN_N), n, [out, x, n]);
}
