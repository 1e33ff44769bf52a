// MXFP4 decoding against values written out here from the OCP Microscaling Formats spec v1.0: FP4 E2M1 codes
// 0..7 are 0, 0.5, 1, 1.5, 2, 3, 4, 6 and codes 8..15 their negatives (sign bit 3); an E8M0 scale byte s is
// 2^(s − 127), 255 is NaN; GPT-OSS packs two codes per byte, the low nibble holding the earlier value.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MoetsError } from '../../src/core/errors.ts';
import { dequantizeMxfp4, FP4_E2M1_VALUES } from '../../src/io/mxfp4.ts';
import { Rng } from '../util/random.ts';

const SPEC_FP4 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** The f32 that holds `value` (Infinity past the f32 range), by the spec's definition, value by value. */
function expectedValue(code: number, scaleByte: number): number {
  return Math.fround(SPEC_FP4[code]! * 2 ** (scaleByte - 127));
}

function assertSame(actual: Float32Array, expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) assert.ok(Object.is(actual[i], expected[i]), `${what}: [${i}] is ${actual[i]}, want ${expected[i]}`);
}

describe('MXFP4', () => {
  it('the FP4 E2M1 table is the spec\'s, -0 included', () => {
    assertSame(Float32Array.from(FP4_E2M1_VALUES), SPEC_FP4, 'table');
  });

  it('decodes every byte with the low nibble first, at scale 2^0', () => {
    // 16 blocks of 16 bytes hold the bytes 0..255 in order.
    const blocks = Uint8Array.from({ length: 256 }, (_, i) => i);
    const scales = new Uint8Array(16).fill(127);
    const out = dequantizeMxfp4(blocks, scales, 16, 'test');
    const expected: number[] = [];
    for (let byte = 0; byte < 256; byte++) expected.push(SPEC_FP4[byte & 0xf]!, SPEC_FP4[byte >> 4]!);
    assertSame(out, expected, 'all bytes');
    // Byte 0x71: low nibble 1 (0.5) first, high nibble 7 (6) second; 0x9f: -6 then -0.5.
    assert.deepEqual([out[2 * 0x71], out[2 * 0x71 + 1]], [0.5, 6]);
    assert.deepEqual([out[2 * 0x9f], out[2 * 0x9f + 1]], [-6, -0.5]);
  });

  it('applies each block\'s scale, from 2^-127 to 2^127 (overflowing f32 to ±Infinity)', () => {
    const scaleBytes = [0, 1, 60, 120, 126, 127, 128, 131, 200, 254];
    const blocks = new Uint8Array(scaleBytes.length * 16);
    // Each block: codes 0..15 low, 15..0 high, so every code meets every scale in both positions.
    for (let g = 0; g < scaleBytes.length; g++) for (let i = 0; i < 16; i++) blocks[g * 16 + i] = i | ((15 - i) << 4);
    const out = dequantizeMxfp4(blocks, Uint8Array.from(scaleBytes), 2, 'test');
    const expected: number[] = [];
    for (const s of scaleBytes) for (let i = 0; i < 16; i++) expected.push(expectedValue(i, s), expectedValue(15 - i, s));
    assertSame(out, expected, 'scales');
    assert.equal(out[2 * 1], 2 ** -128, '0.5 · 2^-127 is an f32 subnormal, kept exactly');
    assert.equal(out[9 * 32 + 2 * 7], Infinity, '6 · 2^127 is past the f32 range');
  });

  it('decodes a whole [E, rows, blocks, 16] tensor in row-major order, and reorders rows on request', () => {
    const [E, R, G] = [3, 5, 4];
    const rng = new Rng(5);
    const blocks = Uint8Array.from({ length: E * R * G * 16 }, () => rng.int(256));
    const scales = Uint8Array.from({ length: E * R * G }, () => 110 + rng.int(30));
    const expected: number[] = [];
    for (let e = 0; e < E; e++) {
      for (let r = 0; r < R; r++) {
        for (let g = 0; g < G; g++) {
          const scale = scales[(e * R + r) * G + g]!;
          for (let j = 0; j < 32; j++) {
            const byte = blocks[((e * R + r) * G + g) * 16 + Math.floor(j / 2)]!;
            expected.push(expectedValue(j % 2 === 0 ? byte & 0xf : byte >> 4, scale));
          }
        }
      }
    }
    assertSame(dequantizeMxfp4(blocks, scales, G, 'test'), expected, 'tensor');
    const width = G * 32;
    const reversed = dequantizeMxfp4(blocks, scales, G, 'test', (row) => E * R - 1 - row);
    for (let row = 0; row < E * R; row++) {
      assertSame(reversed.subarray(row * width, (row + 1) * width), expected.slice((E * R - 1 - row) * width, (E * R - row) * width), `row ${row}`);
    }
  });

  it('rejects the NaN scale and sizes that do not match', () => {
    const nan = () => dequantizeMxfp4(new Uint8Array(32), Uint8Array.from([127, 255]), 2, 'x.gate_up_proj_blocks');
    assert.throws(nan, (e) => e instanceof MoetsError && e.kind === 'format' && /NaN scale/.test(e.message));
    const short = () => dequantizeMxfp4(new Uint8Array(31), Uint8Array.from([127, 127]), 2, 'x.down_proj_blocks');
    assert.throws(short, (e) => e instanceof MoetsError && e.kind === 'format' && /x\.down_proj_blocks/.test(e.message));
  });
});
