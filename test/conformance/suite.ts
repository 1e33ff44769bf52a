// The backend conformance suite: one set of cases every Backend must pass (the CPU reference now, CUDA later).
// Each op runs on fresh seeded random inputs of odd sizes, in f32, bf16 and f16 storage, against float64
// plain-loop references in reference.ts, with the tolerances in check.ts. A failure names its seed; set
// MOETS_CONFORMANCE_SEED to draw other inputs.
//
// Use: conformanceSuite('cuda', () => new CudaBackend(), { skip: { 'case name': 'why this backend skips it' } });
import { describe } from 'node:test';
import type { Backend } from '../../src/backend/backend.ts';
import type { FloatDType } from '../../src/core/dtype.ts';
import { FLOAT_DTYPES, type SuiteContext } from './check.ts';
import { captureCases } from './capture-ops.ts';
import { attentionCases, denseCases } from './dense-ops.ts';
import { fillCases } from './fill-ops.ts';
import { gluCases } from './glu-ops.ts';
import { gptOssCases } from './gpt-oss-ops.ts';
import { layoutCases } from './layout-ops.ts';
import { elementwiseCases, memoryCases } from './memory-ops.ts';
import { moeChainCases } from './moe-chain.ts';
import { moeStageCases } from './moe-ops.ts';
import { routingVariantCases } from './routing-variants.ts';

export interface ConformanceOptions {
  /** Storage dtypes to run the float ops in; default f32, bf16 and f16. */
  dtypes?: readonly FloatDType[];
  /** Cases this backend does not run, by case name, each with the reason (the test report prints it). */
  skip?: Readonly<Record<string, string>>;
}

export function conformanceSuite(label: string, makeBackend: () => Backend, opts: ConformanceOptions = {}): void {
  let backend: Backend | undefined;
  const ctx: SuiteContext = {
    backend: () => (backend ??= makeBackend()),
    dtypes: opts.dtypes ?? FLOAT_DTYPES,
    skip: opts.skip ?? {},
    baseSeed: Number(process.env['MOETS_CONFORMANCE_SEED'] ?? 20240601) >>> 0,
  };
  describe(`conformance: ${label} backend`, () => {
    memoryCases(ctx);
    layoutCases(ctx);
    elementwiseCases(ctx);
    denseCases(ctx);
    attentionCases(ctx);
    moeStageCases(ctx);
    routingVariantCases(ctx);
    gptOssCases(ctx);
    gluCases(ctx);
    moeChainCases(ctx);
    captureCases(ctx);
    fillCases(ctx);
  });
}
