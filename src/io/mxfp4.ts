// MXFP4 (OCP Microscaling Formats v1.0, §5.3 and §6.3): blocks of 32 FP4 E2M1 values sharing one E8M0 scale,
// as GPT-OSS checkpoints store their expert weights: `*_blocks` (uint8, two FP4 codes per byte, the LOW nibble
// holding the earlier value) and `*_scales` (uint8 exponents, bias 127, one per block). Decoded exactly as
// transformers' integrations/mxfp4.py `convert_moe_packed_tensors` does (its FP4_VALUES table, lo nibble → even
// column, ldexp by scale − 127); every decoded value is exact in f32.
//
// blocks: [R, G, 16] bytes, scales: [R, G]  R = rows (all leading dims), G = 32-value blocks per row.
// decoded: [R, G * 32].
import { fail } from '../core/errors.ts';

/** Values per MXFP4 block, and bytes holding one block's codes. */
export const MXFP4_BLOCK = 32;
export const MXFP4_BLOCK_BYTES = MXFP4_BLOCK / 2;

/** FP4 E2M1 code → value: sign bit 3, exponent bits 2..1 (bias 1), mantissa bit 0; code 0b0001 is subnormal 0.5. */
export const FP4_E2M1_VALUES: readonly number[] = Array.from({ length: 16 }, (_, code) => {
  const sign = code & 0b1000 ? -1 : 1;
  const exponent = (code >> 1) & 0b11;
  const mantissa = code & 1;
  return sign * (exponent === 0 ? mantissa * 0.5 : (1 + mantissa / 2) * 2 ** (exponent - 1));
});

/**
 * Decode MXFP4 rows to f32. `rowOrder(r)`, when given, names the stored row that becomes output row r (a
 * permutation applied while decoding, e.g. to de-interleave gate/up rows). `what` names the tensor in errors.
 */
export function dequantizeMxfp4(
  blocks: Uint8Array, scales: Uint8Array, blocksPerRow: number, what: string, rowOrder?: (row: number) => number,
): Float32Array {
  const G = blocksPerRow;
  if (scales.length % G !== 0 || blocks.length !== scales.length * MXFP4_BLOCK_BYTES) {
    fail('format', `${what}: ${blocks.length} block bytes and ${scales.length} scales do not make rows of ${G} blocks of ${MXFP4_BLOCK} values; the checkpoint is corrupt`);
  }
  const rows = scales.length / G;
  const width = G * MXFP4_BLOCK;
  const out = new Float32Array(rows * width);
  // Both nibbles of a byte at once: pairs[2 * byte] is the low (earlier) value, pairs[2 * byte + 1] the high.
  const pairs = new Float32Array(512);
  for (let byte = 0; byte < 256; byte++) {
    pairs[2 * byte] = FP4_E2M1_VALUES[byte & 0x0f]!;
    pairs[2 * byte + 1] = FP4_E2M1_VALUES[byte >> 4]!;
  }
  for (let r = 0; r < rows; r++) {
    const stored = rowOrder ? rowOrder(r) : r;
    for (let g = 0; g < G; g++) {
      const scaleByte = scales[stored * G + g]!;
      if (scaleByte === 255) fail('format', `${what}: row ${stored}, block ${g} has the E8M0 NaN scale (255); the checkpoint is corrupt`);
      const scale = 2 ** (scaleByte - 127); // E8M0: 2^(byte − 127)
      const from = (stored * G + g) * MXFP4_BLOCK_BYTES;
      const to = r * width + g * MXFP4_BLOCK;
      for (let i = 0; i < MXFP4_BLOCK_BYTES; i++) {
        const byte = blocks[from + i]!;
        out[to + 2 * i] = pairs[2 * byte]! * scale;
        out[to + 2 * i + 1] = pairs[2 * byte + 1]! * scale;
      }
    }
  }
  return out;
}

/**
 * How a stored tensor counts in a checkpoint's parameters: MXFP4 `*_blocks` (U8) hold two values per byte and
 * are reported as 'MXFP4'; their `*_scales` (U8) only scale them and hold none. Other tensors are left to the caller.
 */
export function mxfp4StoredValues(name: string, dtype: string, elements: number): { values: number; dtype: string } | undefined {
  if (dtype !== 'U8') return undefined;
  if (name.endsWith('_blocks')) return { values: 2 * elements, dtype: 'MXFP4' };
  if (name.endsWith('_scales')) return { values: 0, dtype: 'MXFP4' };
  return undefined;
}
