// Launchers for layout.cu (the "launchers" half of that file): sliceColumns, concatHeads, embedding and writeRows, each a
// grid-stride copy of raw element bits, the kernel picked by dtype and queued on the device's stream.
// Legend: R = rows, C = columns, T = tokens, H = heads, A/B = per-head widths, V = vocabulary, D = row width;
// n = elements written.
import type { DType, FloatDType } from '../../../core/dtype.ts';
import type { CudaDevice } from '../device.ts';
import type { KernelFile } from '../launch.ts';

const SOURCE: KernelFile = { file: 'layout.cu' };

/** out [R, count] = columns [start, start + count) of x [R, cols]; n = R · count. */
export function sliceColumnsInto(dev: CudaDevice, dtype: DType, out: number, x: number, cols: number, start: number, count: number, n: number): void {
  const kernel = dev.kernel(SOURCE, `slice_columns_${dtype}`, ['ptr', 'ptr', 'u64', 'u64', 'u64', 'u64']);
  dev.launchElementwise(kernel, n, [out, x, cols, start, count, n]);
}

/** out [T, H, A+B] = a [T, H, A] and b [T, Hb, B] per head; bBroadcast when Hb = 1 (b's row t goes to every head). */
export function concatHeadsInto(
  dev: CudaDevice, dtype: DType, out: number, a: number, b: number,
  widths: { heads: number; a: number; b: number; bBroadcast: boolean }, n: number,
): void {
  const kernel = dev.kernel(SOURCE, `concat_heads_${dtype}`, ['ptr', 'ptr', 'ptr', 'u64', 'u64', 'u64', 'i32', 'u64']);
  dev.launchElementwise(kernel, n, [out, a, b, widths.heads, widths.a, widths.b, widths.bBroadcast ? 1 : 0, n]);
}

/** out [T, D] = rows ids [T] (i32) of table [V, D]; n = T · D. An id outside [0, V) gives a row of NaN. */
export function embeddingInto(dev: CudaDevice, dtype: FloatDType, out: number, table: number, ids: number, vocab: number, width: number, n: number): void {
  const kernel = dev.kernel(SOURCE, `embedding_${dtype}`, ['ptr', 'ptr', 'ptr', 'u64', 'u64', 'u64']);
  dev.launchElementwise(kernel, n, [out, table, ids, vocab, width, n]);
}

/** dst [R, D] row rows[t] = src [T, D] row t (rows: i32 [T] on the device); n = T · D. Rows outside [0, R) are skipped. */
export function writeRowsInto(dev: CudaDevice, dtype: DType, dst: number, src: number, rows: number, dstRows: number, width: number, n: number): void {
  const kernel = dev.kernel(SOURCE, `write_rows_${dtype}`, ['ptr', 'ptr', 'ptr', 'u64', 'u64', 'u64']);
  dev.launchElementwise(kernel, n, [dst, src, rows, dstRows, width, n]);
}
