// Conformance cases for randomNormal: every backend stores the values of the counter-based hash (computed here with
// BigInt, apart from the backends' own code), so the CPU and the GPU fill the same weights; and those values have the
// mean and standard deviation asked for.
//
// A backend's log and cos may differ from V8's in the last bit of a double; that changes the rounded value only when
// it sits within a few double ulps of a rounding boundary (about once in 10^8 elements), so the exact match allows
// one differing element in 10^4, and that one within one unit of the dtype's last place.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import type { FloatDType } from '../../src/core/dtype.ts';
import { conformanceCase, expectTensor, quantize, readFloat, type SuiteContext } from './check.ts';

const MASK64 = (1n << 64n) - 1n;

function splitmix64(z: bigint): bigint {
  z = (z + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** The standard normals z_0 … z_{n-1} of stream `seed`, in float64 (the Backend.randomNormal definition). */
function hashedNormalsRef(n: number, seed: number): Float64Array {
  const s = splitmix64(BigInt(seed));
  return Float64Array.from({ length: n }, (_, i) => {
    const h = splitmix64(s ^ BigInt(i));
    const u1 = (Number(h >> 40n) + 1) / 16777217;
    const u2 = Number(h & 0xffffffn) / 16777216;
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  });
}

/** What a backend must store: std · z rounded to f32, then to the dtype. */
function storedRef(z: Float64Array, std: number, dtype: FloatDType): Float64Array {
  return quantize(Array.from(z, (v) => Math.fround(std * v)), dtype).held;
}

const MANTISSA_BITS: Record<FloatDType, number> = { f32: 23, bf16: 7, f16: 10 };

/** Bit-equal to `expected` but for at most one element in 10^4, which must be within one unit in the last place. */
function expectHashValues(actual: Float32Array, expected: Float64Array, dtype: FloatDType, tag: string): void {
  assert.equal(actual.length, expected.length, `${tag} length`);
  const differing: number[] = [];
  for (let i = 0; i < expected.length; i++) {
    if (Object.is(actual[i], expected[i])) continue;
    differing.push(i);
    const ulp = 2 ** (Math.floor(Math.log2(Math.abs(expected[i]!))) - MANTISSA_BITS[dtype]);
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= ulp, `${tag} ${dtype}: element ${i} is ${actual[i]}, want ${expected[i]}`);
  }
  assert.ok(differing.length <= Math.floor(expected.length / 1e4),
    `${tag} ${dtype}: ${differing.length} of ${expected.length} elements differ in the last place (first at ${differing[0]})`);
}

export function fillCases(ctx: SuiteContext): void {
  describe('fill', () => {
    conformanceCase(ctx, 'randomNormal: the counter-based hash, bit for bit, in every dtype', async (rng, tag, b) => {
      const [R, C] = [37, 129];
      // A seed past 2^32 exercises the hash's high word.
      for (const seed of [rng.int(2 ** 31), 2 ** 40 + rng.int(2 ** 31)]) {
        const z = hashedNormalsRef(R * C, seed);
        for (const dtype of ctx.dtypes) {
          for (const std of [1.5, 0.02]) {
            const t = b.randomNormal([R, C], dtype, seed, std);
            expectTensor(t, dtype, [R, C], tag);
            expectHashValues(await readFloat(t, tag), storedRef(z, std, dtype), dtype, `${tag} seed ${seed} std ${std}`);
          }
        }
      }
    });

    conformanceCase(ctx, 'randomNormal: values depend on seed and index only; std 0 and no elements', async (rng, tag, b) => {
      const seed = rng.int(2 ** 31);
      const flat = await readFloat(b.randomNormal([91], 'f32', seed, 1), tag);
      const shaped = await readFloat(b.randomNormal([7, 13], 'f32', seed, 1), tag);
      assert.deepEqual(shaped, flat, `${tag}: [7, 13] holds other values than [91]`);
      const other = await readFloat(b.randomNormal([91], 'f32', seed + 1, 1), tag);
      assert.ok(other.some((v, i) => v !== flat[i]), `${tag}: seeds ${seed} and ${seed + 1} give the same values`);
      expectHashValues(await readFloat(b.randomNormal([33], 'bf16', seed, 0), tag), storedRef(hashedNormalsRef(33, seed), 0, 'bf16'), 'bf16', tag);
      const empty = b.randomNormal([0, 5], 'bf16', seed, 1);
      expectTensor(empty, 'bf16', [0, 5], tag);
      assert.equal((await readFloat(empty, tag)).length, 0, `${tag}: [0, 5] read back values`);
    });

    conformanceCase(ctx, 'randomNormal: mean 0 and the std asked for', async (rng, tag, b) => {
      const n = 40_001;
      for (const dtype of ctx.dtypes) {
        const std = 0.02 + rng.next();
        const values = await readFloat(b.randomNormal([n], dtype, rng.int(2 ** 31), std), tag);
        const mean = values.reduce((a, v) => a + v, 0) / n;
        const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
        // 5 standard errors: the mean's is std/√n, the sample std's about std/√(2n) (0.35 % here).
        assert.ok(Math.abs(mean) <= (5 * std) / Math.sqrt(n), `${tag} ${dtype}: mean ${mean} for std ${std}`);
        assert.ok(Math.abs(sd / std - 1) <= 5 / Math.sqrt(2 * n), `${tag} ${dtype}: std ${sd}, asked for ${std}`);
      }
    });
  });
}
