// The GEMV plan (src/backend/cuda/kernels/gemv.ts planGemv), without a GPU: every plan fits the kernels' contract
// (a kernel instance that exists, teams inside blocks, at most one resident wave), and the choices the comments
// promise for decode shapes on a 132-SM H200: big outputs on single warps, few long columns split across warps,
// small matrices spread over more SMs in smaller blocks, a last turn of warps that is not nearly empty.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { denseBlocksPerSM, gemvRows, planGemv, type GemvRows, type GemvShape } from '../../../src/backend/cuda/kernels/gemv.ts';

const SMS = 132;
const dense = (T: number, Nout: number, Kin: number): GemvShape => {
  const rows = gemvRows(T);
  return { matrices: 1, Nout, Kin, vector: 8, rows, blocksPerSM: (c) => denseBlocksPerSM(rows, c) };
};

test('planGemv: every plan is one the kernels can run', () => {
  for (const T of [1, 2, 3, 5, 8]) {
    for (const [Nout, Kin] of [[1, 8], [17, 4096], [512, 2048], [4096, 4096], [151936, 2048], [7, 263], [300, 8192]]) {
      const rows = gemvRows(T) as GemvRows;
      for (const s of [dense(T, Nout!, Kin!), { matrices: 8, Nout: Nout!, Kin: Kin!, vector: 8, rows: 8 as const, blocksPerSM: () => 2 }]) {
        const p = planGemv(SMS, s);
        const what = `T ${T} [${Nout}, ${Kin}] ${JSON.stringify(p)}`;
        assert.ok(p.rows >= (s.matrices === 1 ? rows : 8) && p.columns * 4 >= p.rows, what);
        assert.ok(p.blockWarps >= p.teamWarps && p.blockWarps % p.teamWarps === 0 && p.blockWarps <= 8, what);
        assert.ok(p.grid >= 1 && p.grid <= SMS * s.blocksPerSM(p.columns) * (8 / p.blockWarps), what);
      }
    }
  }
});

test('planGemv: decode shapes get the plans the cost rule gives', () => {
  // LM head: plenty of columns; 4 a unit fill the warps evenly (37984 units on 3168 warps).
  assert.deepEqual(planGemv(SMS, dense(1, 151936, 2048)), { rows: 1, columns: 4, teamWarps: 1, blockWarps: 8, grid: 396 });
  // Mixtral k/v [1024 ← 4096]: 1024 single columns would leave warps idle; two warps split each Kin.
  assert.equal(planGemv(SMS, dense(1, 1024, 4096)).teamWarps, 2);
  // Qwen3 k/v [512 ← 2048]: the whole matrix is one round of loads; blocks of 2 warps spread it over all SMs.
  assert.deepEqual(planGemv(SMS, dense(1, 512, 2048)), { rows: 1, columns: 1, teamWarps: 1, blockWarps: 2, grid: 256 });
  // Qwen3 experts gate|up at T = 1 (8 × [1536 ← 2048]): 4 columns a unit would leave a last turn of 960 of 2112 warps.
  assert.equal(planGemv(SMS, { matrices: 8, Nout: 1536, Kin: 2048, vector: 8, rows: 8, blocksPerSM: () => 2 }).columns, 2);
  // Overrides (benchmarks) win.
  const forced = planGemv(SMS, dense(8, 4096, 4096), { columns: 4, teamWarps: 8, grid: 3 });
  assert.deepEqual([forced.columns, forced.teamWarps, forced.grid], [4, 8, 3]);
});
