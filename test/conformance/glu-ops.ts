// Conformance cases for groupedGluLinear, the experts' first projection with its SwiGLU: out [N, F] =
// glu(groupedLinear(x, gateUp, offsets, bias)), against a float64 plain loop per expert (linearRef, then SwiGLU or
// GPT-OSS's clamped GLU). Row splits cover each kernel the CUDA backend picks (kernels/moe.ts groupedLinearPath):
// the fused GEMV (few rows; 16-byte rows or not; more rows than one pass; more than 256 experts), the fused
// tensor-core tiles (bf16/f16, Kin % 8 == 0, N > 4·E; 64- and 128-row tiles), and the CUDA-core tiles, where the
// two ops run unfused. Empty experts everywhere, N = 0, odd F (a warp's columns cut short), bias on and off.
//
// Legend: E = experts, N = routed rows, Kin = input features, F = FFN size (gateUp holds 2F rows: gate, then up).
import { describe } from 'node:test';
import type { Backend, ClampedGlu } from '../../src/backend/backend.ts';
import type { FloatDType } from '../../src/core/dtype.ts';
import type { Rng } from '../util/random.ts';
import { conformanceCase, expectClose, expectTensor, indexTensor, randomTensor, readFloat, type SuiteContext } from './check.ts';
import { clampedGluRef } from './gpt-oss-ops.ts';
import { linearRef, siluMulRef } from './reference.ts';

interface GluCase {
  /** Rows per expert. */
  counts: number[];
  Kin: number;
  F: number;
  /** The path on CUDA: bf16/f16, then f32 (f32 never takes the tensor cores). */
  path: string;
}

/** 300 experts, 3 hit, one of them past the first 256 (the GEMV's expert search reads 256 at a time). */
const MANY = Array.from({ length: 300 }, (_, e) => ({ 3: 40, 255: 1, 299: 20 })[e] ?? 0);

const CASES: GluCase[] = [
  { counts: [0, 3, 1, 0, 2, 0], Kin: 64, F: 40, path: 'gemv, 16-byte rows; F past one 32-column strip' },
  { counts: [1], Kin: 33, F: 17, path: 'gemv, scalar loads (odd Kin); one row' },
  { counts: [0, 12, 4, 0], Kin: 64, F: 37, path: 'gemv: N = 4·E, 12 rows (two 8-row passes); F = 32 + 5' },
  { counts: MANY, Kin: 16, F: 8, path: 'gemv over 300 experts' },
  { counts: [0, 70, 1, 0, 64, 9], Kin: 200, F: 68, path: 'mma64 (70 rows over two tiles); f32: gemv' },
  { counts: [300, 0, 129], Kin: 72, F: 17, path: 'mma128, odd F; f32: CUDA-core tiles, unfused' },
  { counts: [200, 0, 100], Kin: 36, F: 12, path: 'CUDA-core tiles (Kin % 8 != 0), unfused' },
  { counts: [0, 0, 0], Kin: 16, F: 8, path: 'no rows at all' },
];

/** GPT-OSS's constants, and a low limit that clamps most gates and ups. */
const CLAMPS: ClampedGlu[] = [{ alpha: 1.702, limit: 7 }, { alpha: 1.702, limit: 0.75 }];

export function gluCases(ctx: SuiteContext): void {
  describe('groupedGluLinear', () => {
    conformanceCase(ctx, 'groupedGluLinear: SwiGLU per expert, bias on and off', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const c of CASES) {
          for (const bias of [false, true]) await checkGlu(b, rng, tag, dtype, c, bias, undefined);
        }
      }
    });

    conformanceCase(ctx, 'groupedGluLinear: the clamped SwiGLU (GPT-OSS), bias on and off', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const c of CASES) {
          for (const [i, clamped] of CLAMPS.entries()) await checkGlu(b, rng, tag, dtype, c, i === 1, clamped);
        }
      }
    });
  });
}

/**
 * groupedGluLinear on random x [N, Kin], gateUp [E, 2F, Kin] (std 1.5/√Kin: gate and up sums of std ~1.5, so
 * silu's curve and the clamps both matter) and bias [E, 2F], against the float64 loop.
 */
async function checkGlu(
  b: Backend, rng: Rng, tag: string, dtype: FloatDType, c: GluCase, withBias: boolean, clamped: ClampedGlu | undefined,
): Promise<void> {
  const { counts, Kin, F } = c;
  const E = counts.length;
  const offsets = counts.reduce((o, n) => [...o, o.at(-1)! + n], [0]);
  const N = offsets.at(-1)!;
  const x = randomTensor(b, rng, [N, Kin], dtype);
  const w = randomTensor(b, rng, [E, 2 * F, Kin], dtype, 1.5 / Math.sqrt(Kin));
  const bias = withBias ? randomTensor(b, rng, [E, 2 * F], dtype, 0.5) : undefined;
  const offsetsT = indexTensor(b, offsets);
  const y = b.groupedGluLinear(x.t, w.t, offsetsT, bias?.t, clamped);
  expectTensor(y, dtype, [N, F], tag);
  const projected = new Float64Array(N * 2 * F); // [N, 2F]: gate sums, then up sums, per row
  for (let e = 0; e < E; e++) {
    const xs = x.held.subarray(offsets[e]! * Kin, offsets[e + 1]! * Kin);
    const we = w.held.subarray(e * 2 * F * Kin, (e + 1) * 2 * F * Kin);
    projected.set(linearRef(xs, we, counts[e]!, 2 * F, Kin, bias?.held.subarray(e * 2 * F, (e + 1) * 2 * F)), offsets[e]! * 2 * F);
  }
  const expected = clamped ? clampedGluRef(projected, F, clamped) : siluMulRef(projected, F);
  const split = E > 12 ? `${E} experts, ${N} rows` : `counts [${counts}]`;
  const glu = clamped ? `clamped (limit ${clamped.limit})` : 'silu';
  expectClose(await readFloat(y, tag), expected, dtype, `${tag} ${glu} ${split} Kin ${Kin} F ${F} bias ${withBias} (${c.path})`);
  for (const t of [x.t, w.t, bias?.t, offsetsT, y]) t?.dispose();
}
