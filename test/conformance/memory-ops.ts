// Conformance cases for memory and elementwise ops: upload/uploadBytes/read/zeros round trips (every bf16 and f16
// code, round-to-nearest-even edge cases), write (in stream order), cast, add, mul, scaleRows, sigmoid, softmax,
// sliceRows, copyRows, writeRows.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import type { DType, FloatDType } from '../../src/core/dtype.ts';
import {
  conformanceCase, expectClose, expectExact, expectTensor, floatTensor, indexTensor, quantize, randomTensor,
  readFloat, readIndex, type SuiteContext,
} from './check.ts';
import { bf16BitsToNumber, f16BitsToNumber, roundToF32, sigmoid, softmaxRef } from './reference.ts';

/** f32 values that exercise rounding: exact ties, just past ties, overflow, subnormals, signed zero, NaN, ±Inf. */
function roundingEdgeValues(): number[] {
  const fromBits = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0]!;
  return [
    0, -0, 1, -2.5, NaN, Infinity, -Infinity,
    fromBits(0x3f808000), fromBits(0x3f818000), fromBits(0x3f808001), fromBits(0xbf808000), // bf16 ties and past
    fromBits(0x7f7fffff), fromBits(0xff7fffff), fromBits(0x7f7f7fff), // bf16 overflow to ±Inf, and just below
    1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, // f16 ties to even (down, up) and past the tie
    65504, 65519, 65520, -65520, 1e6, // f16 largest, round down to it, round to Inf
    2 ** -25, 3 * 2 ** -25, 2 ** -24, 2 ** -14 - 2 ** -25, 1e-10, -1e-10, // f16 subnormals and underflow
    2 ** -149, 2 ** -126, 1e-39, // f32 subnormals (bf16 keeps f32's exponent range)
  ];
}

/** Little-endian bytes of `values` stored as `dtype`. */
function bytesOf(values: number[], dtype: FloatDType): Uint8Array {
  const { stored } = quantize(values, dtype);
  const bytes = new Uint8Array(stored.length * (dtype === 'f32' ? 4 : 2));
  const view = new DataView(bytes.buffer);
  stored.forEach((v, i) => (dtype === 'f32' ? view.setFloat32(i * 4, v, true) : view.setUint16(i * 2, v, true)));
  return bytes;
}

export function memoryCases(ctx: SuiteContext): void {
  describe('memory', () => {
    conformanceCase(ctx, 'upload/read: every bf16 and f16 code widens exactly', async (_rng, tag, b) => {
      const codes = Uint16Array.from({ length: 65536 }, (_, i) => i);
      for (const [dtype, decode] of [['bf16', bf16BitsToNumber], ['f16', f16BitsToNumber]] as const) {
        const t = b.upload(codes, [256, 256], dtype);
        expectTensor(t, dtype, [256, 256], tag);
        expectExact(await readFloat(t, tag), Array.from(codes, decode), `${tag} ${dtype}`);
      }
    });

    conformanceCase(ctx, 'upload/read: f32 and i32 round trip exactly', async (rng, tag, b) => {
      const f32 = Float32Array.from([...roundingEdgeValues(), ...rng.normals(31, 100)]);
      expectExact(await readFloat(b.upload(f32, [f32.length], 'f32'), tag), f32, `${tag} f32`);
      const i32 = Int32Array.from([0, -1, 2 ** 31 - 1, -(2 ** 31), ...Array.from({ length: 29 }, () => rng.int(2 ** 31) - 2 ** 30)]);
      expectExact(await readIndex(b.upload(i32, [3, 11], 'i32'), tag), i32, `${tag} i32`);
    });

    conformanceCase(ctx, 'upload copies its data; read returns a copy', async (rng, tag, b) => {
      const data = rng.normals(33);
      const kept = Float32Array.from(data);
      const t = b.upload(data, [33], 'f32');
      data.fill(7);
      const first = await readFloat(t, tag);
      expectExact(first, kept, `${tag} after writing to the uploaded array`);
      first.fill(9);
      expectExact(await readFloat(t, tag), kept, `${tag} after writing to a read result`);
    });

    conformanceCase(ctx, 'uploadBytes: every float conversion rounds to nearest even', async (rng, tag, b) => {
      const values = [...roundingEdgeValues(), ...rng.normals(33, 3)];
      for (const source of ['f32', 'bf16', 'f16'] as const) {
        const sourceHeld = quantize(values, source).held;
        for (const target of ['f32', 'bf16', 'f16'] as const) {
          const t = b.uploadBytes(bytesOf(values, source), source, [values.length], target);
          expectTensor(t, target, [values.length], tag);
          expectExact(await readFloat(t, tag), quantize(sourceHeld, target).held, `${tag} ${source} bytes → ${target}`);
        }
      }
    });

    conformanceCase(ctx, 'uploadBytes: i32 little-endian', async (rng, tag, b) => {
      const ids = Int32Array.from({ length: 31 }, () => rng.int(2 ** 31) - 2 ** 30);
      const bytes = new Uint8Array(ids.length * 4);
      ids.forEach((v, i) => new DataView(bytes.buffer).setInt32(i * 4, v, true));
      expectExact(await readIndex(b.uploadBytes(bytes, 'i32', [ids.length], 'i32'), tag), ids, tag);
    });

    conformanceCase(ctx, 'zeros in every dtype', async (_rng, tag, b) => {
      for (const dtype of ['f32', 'bf16', 'f16', 'i32'] as DType[]) {
        const t = b.zeros([3, 1, 33], dtype);
        expectTensor(t, dtype, [3, 1, 33], tag);
        expectExact(await t.read(), new Array(99).fill(0), `${tag} ${dtype}`);
      }
    });

    conformanceCase(ctx, 'cast between float dtypes rounds to nearest even', async (rng, tag, b) => {
      const values = [...roundingEdgeValues(), ...rng.normals(31, 10)];
      for (const from of ctx.dtypes) {
        const x = floatTensor(b, values, [values.length], from);
        for (const to of ['f32', 'bf16', 'f16'] as const) {
          const y = b.cast(x.t, to);
          expectTensor(y, to, [values.length], tag);
          expectExact(await readFloat(y, tag), quantize(x.held, to).held, `${tag} ${from} → ${to}`);
        }
      }
    });
  });
}

export function elementwiseCases(ctx: SuiteContext): void {
  describe('elementwise and layout', () => {
    conformanceCase(ctx, 'add and mul', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const shape of [[7, 33], [3, 5, 31], [1]]) {
          const a = randomTensor(b, rng, shape, dtype);
          const c = randomTensor(b, rng, shape, dtype);
          const sum = b.add(a.t, c.t);
          const product = b.mul(a.t, c.t);
          expectTensor(sum, dtype, shape, tag);
          expectTensor(product, dtype, shape, tag);
          expectClose(await readFloat(sum, tag), a.held.map((v, i) => v + c.held[i]!), dtype, `${tag} add [${shape}]`);
          expectClose(await readFloat(product, tag), a.held.map((v, i) => v * c.held[i]!), dtype, `${tag} mul [${shape}]`);
        }
      }
    });

    conformanceCase(ctx, 'scaleRows by s [R] and [R, 1]', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [R, D] of [[31, 33], [1, 127]] as const) {
          const x = randomTensor(b, rng, [R, D], dtype);
          const s = rng.normals(R);
          const expected = x.held.map((v, i) => v * s[Math.floor(i / D)]!);
          for (const sShape of [[R], [R, 1]]) {
            const y = b.scaleRows(x.t, b.upload(s, sShape, 'f32'));
            expectTensor(y, dtype, [R, D], tag);
            expectClose(await readFloat(y, tag), expected, dtype, `${tag} [${R}, ${D}] by [${sShape}]`);
          }
        }
      }
    });

    conformanceCase(ctx, 'sigmoid, including large magnitudes', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const x = floatTensor(b, [...rng.normals(127, 4), 30, -30, 100, -100, 0], [4, 33], dtype);
        const y = b.sigmoid(x.t);
        expectTensor(y, dtype, [4, 33], tag);
        expectClose(await readFloat(y, tag), x.held.map(sigmoid), dtype, tag);
      }
    });

    conformanceCase(ctx, 'softmax over the last dim, including large-magnitude and constant rows', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const D = 33;
        const rows = [rng.normals(D), rng.normals(D, 1000), rng.normals(D, 5, 9000), new Float32Array(D).fill(-3)];
        const x = floatTensor(b, rows.flatMap((r) => [...r]), [2, 2, D], dtype);
        const y = b.softmax(x.t);
        expectTensor(y, dtype, [2, 2, D], tag);
        expectClose(await readFloat(y, tag), softmaxRef(x.held, D), dtype, `${tag} D=${D}`);
        const wide = floatTensor(b, rng.normals(3 * 1031, 4), [3, 1031], dtype);
        expectClose(await readFloat(b.softmax(wide.t), tag), softmaxRef(wide.held, 1031), dtype, `${tag} D=1031`);
        const single = floatTensor(b, rng.normals(5, 50), [5, 1], dtype);
        expectClose(await readFloat(b.softmax(single.t), tag), [1, 1, 1, 1, 1], dtype, `${tag} D=1`);
      }
    });

    conformanceCase(ctx, 'sliceRows', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const x = randomTensor(b, rng, [31, 3, 5], dtype);
        for (const [start, count] of [[0, 31], [7, 1], [30, 1], [4, 17]] as const) {
          const y = b.sliceRows(x.t, start, count);
          expectTensor(y, dtype, [count, 3, 5], tag);
          expectExact(await readFloat(y, tag), x.held.slice(start * 15, (start + count) * 15), `${tag} ${dtype} ${start}+${count}`);
        }
      }
      const ids = Int32Array.from({ length: 33 }, (_, i) => i * 7 - 50);
      expectExact(await readIndex(b.sliceRows(b.upload(ids, [11, 3], 'i32'), 2, 5), tag), ids.slice(6, 21), `${tag} i32`);
    });

    conformanceCase(ctx, 'copyRows writes in place and leaves the other rows alone', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const [S, H, Dh] = [37, 2, 7];
        const cache = randomTensor(b, rng, [S, H, Dh], dtype);
        const expected = Float64Array.from(cache.held);
        for (const [at, T] of [[0, 5], [5, 1], [36, 1], [20, 16]] as const) {
          const src = randomTensor(b, rng, [T, H, Dh], dtype);
          b.copyRows(cache.t, src.t, at);
          expected.set(src.held, at * H * Dh);
          expectExact(await readFloat(cache.t, tag), expected, `${tag} ${dtype} at ${at}, ${T} rows`);
        }
      }
    });

    conformanceCase(ctx, 'writeRows writes rows given by an index tensor, in place', async (rng, tag, b) => {
      const [R, H, Dh] = [41, 3, 5];
      // Not consecutive, not sorted, the first and last rows among them.
      for (const rows of [[40, 0, 17, 3, 18, 39, 1], [9], [2, 3, 4]]) {
        for (const dtype of ctx.dtypes) {
          const dst = randomTensor(b, rng, [R, H, Dh], dtype);
          const src = randomTensor(b, rng, [rows.length, H, Dh], dtype);
          b.writeRows(dst.t, src.t, indexTensor(b, rows));
          const expected = Float64Array.from(dst.held);
          rows.forEach((r, t) => expected.set(src.held.subarray(t * H * Dh, (t + 1) * H * Dh), r * H * Dh));
          expectExact(await readFloat(dst.t, tag), expected, `${tag} ${dtype} rows [${rows}]`);
        }
        const ids = b.upload(Int32Array.from({ length: R * 2 }, (_, i) => i - 7), [R, 2], 'i32');
        const expected = Int32Array.from({ length: R * 2 }, (_, i) => i - 7);
        rows.forEach((r, t) => expected.set([-1000 - t, 1000 + t], r * 2));
        b.writeRows(ids, b.upload(Int32Array.from(rows.flatMap((_, t) => [-1000 - t, 1000 + t])), [rows.length, 2], 'i32'), indexTensor(b, rows));
        expectExact(await readIndex(ids, tag), expected, `${tag} i32 rows [${rows}]`);
      }
    });

    conformanceCase(ctx, 'write puts host values into a tensor, in order with the ops around it', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const first = floatTensor(b, rng.normals(33), [3, 11], dtype);
        const second = quantize(rng.normals(33), dtype);
        const x = first.t;
        const before = b.add(x, x); // queued before the write: sees the first values
        b.write(x, second.stored);
        const after = b.add(x, x); // queued after: sees the second
        expectExact(await readFloat(before, tag), first.held.map((v) => roundToF32(2 * v)).map((v) => quantize([v], dtype).held[0]!), `${tag} ${dtype} before`);
        expectExact(await readFloat(x, tag), second.held, `${tag} ${dtype} written`);
        expectExact(await readFloat(after, tag), second.held.map((v) => quantize([roundToF32(2 * v)], dtype).held[0]!), `${tag} ${dtype} after`);
      }
      const ids = indexTensor(b, [1, 2, 3, 4]);
      b.write(ids, Int32Array.of(-5, 0, 2 ** 31 - 1, -(2 ** 31)));
      expectExact(await readIndex(ids, tag), [-5, 0, 2 ** 31 - 1, -(2 ** 31)], `${tag} i32`);
    });

    conformanceCase(ctx, 'bf16/f16 outputs are the rounded f32 results', async (rng, tag, b) => {
      // add of values whose exact sums need rounding: the stored result must be the nearest-even code.
      for (const dtype of ctx.dtypes.filter((d) => d !== 'f32')) {
        const a = floatTensor(b, rng.normals(127), [127], dtype);
        const c = floatTensor(b, rng.normals(127, 0.01), [127], dtype);
        const sums = a.held.map((v, i) => roundToF32(v + c.held[i]!));
        const got = await readFloat(b.add(a.t, c.t), tag);
        assert.ok(quantize(sums, dtype).held.every((v, i) => v === got[i]), `${tag} ${dtype}: add is not round(a + b)`);
      }
    });
  });
}
