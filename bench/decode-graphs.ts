// Decode steps of the embedded default model on CUDA, plain (every kernel launched from the host) against captured
// (one CUDA graph replayed per step, src/generate/decode-step.ts). Prints per step, median over the timed steps:
//   host ms — enqueueing the step: plain, the model's runStep (hundreds of launches); graphs, 3 input writes + 1
//             graph launch. Measured without waiting for the GPU.
//   wall ms — the whole step through DecodeStepper, logits on the host (what generate() sees), and tokens/s.
// Run on the GPU machine: node --import tsx bench/decode-graphs.ts [--steps 64] [--batch 1] [--dtype bf16|f32]
import type { CapturedStep } from '../src/backend/backend.ts';
import type { FloatDType } from '../src/core/dtype.ts';
import { DecodeStepper } from '../src/generate/decode-step.ts';
import { DEFAULT_MODEL_DIR, loadModel } from '../src/models/load.ts';
import { uploadStepInputs, type CausalLM, type StepInputs } from '../src/models/model.ts';

const arg = (name: string, fallback: string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1]! : fallback;
};
const steps = Number(arg('steps', '64'));
const batch = Number(arg('batch', '1'));
const dtype = arg('dtype', 'bf16') as FloatDType;
const PROMPT = 32;

const model = await loadModel(DEFAULT_MODEL_DIR, { device: 'cuda', dtype });
const ids = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729) % model.vocabSize);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Wall time per step through DecodeStepper (the first two decode steps — warm-up and capture — not timed). */
async function wallPerStep(graphs: boolean): Promise<number> {
  const cache = model.newCache({ batch, capacity: PROMPT + steps + 2 });
  const stepper = new DecodeStepper(model, cache, { graphs });
  await stepper.step(ids(batch * PROMPT, 1));
  await stepper.step(ids(batch, 2));
  await stepper.step(ids(batch, 3));
  const times: number[] = [];
  for (let n = 0; n < steps; n++) {
    const t0 = performance.now();
    await stepper.step(ids(batch, 4 + n));
    times.push(performance.now() - t0);
  }
  stepper.dispose();
  cache.dispose();
  return median(times);
}

/** Host time to enqueue one step, plain or as a graph replay, waiting for the GPU only after the clock stops. */
async function hostPerStep(lm: CausalLM, graphs: boolean): Promise<number> {
  const b = lm.backend;
  const cache = lm.newCache({ batch, capacity: PROMPT + steps + 2 });
  await (await lm.forward(ids(batch * PROMPT, 1), cache, { lastTokens: 1 })).read();
  await (await lm.forward(ids(batch, 2), cache, { lastTokens: 1 })).read(); // loads the decode step's kernels
  let captured: { step: CapturedStep; inputs: StepInputs } | undefined;
  if (graphs) {
    const inputs: StepInputs = { ids: b.zeros([batch], 'i32'), positions: b.zeros([batch, 1], 'i32'), rows: b.zeros([batch], 'i32') };
    captured = { step: await b.capture(() => lm.runStep(inputs, cache, { lastTokens: 1 })), inputs };
  }
  const times: number[] = [];
  for (let n = 0; n < steps + 1; n++) {
    const values = lm.prepareStep(ids(batch, 4 + n), cache);
    const t0 = performance.now();
    let logits;
    let uploaded: StepInputs | undefined;
    if (captured) {
      b.write(captured.inputs.ids, values.ids);
      b.write(captured.inputs.positions, values.positions);
      b.write(captured.inputs.rows, values.rows);
      logits = await captured.step.replay();
    } else {
      uploaded = uploadStepInputs(b, values);
      logits = await lm.runStep(uploaded, cache, { lastTokens: 1 });
    }
    const t1 = performance.now();
    await logits.read();
    cache.advance(values.tokens);
    if (uploaded) for (const t of [logits, ...Object.values(uploaded)]) t.dispose();
    if (n > 0) times.push(t1 - t0);
  }
  captured?.step.dispose();
  cache.dispose();
  return median(times);
}

console.log(`default model on cuda, ${dtype}, batch ${batch}, prompt ${PROMPT}, ${steps} timed decode steps (medians)`);
const rows: string[] = [];
for (let round = 0; round < 2; round++) {
  const plainHost = await hostPerStep(model, false);
  const graphHost = await hostPerStep(model, true);
  const plainWall = await wallPerStep(false);
  const graphWall = await wallPerStep(true);
  rows.push(`round ${round}: host ms/step plain ${plainHost.toFixed(3)}, graphs ${graphHost.toFixed(3)} (${(plainHost / graphHost).toFixed(1)}×); ` +
    `wall ms/step plain ${plainWall.toFixed(3)} (${(batch * 1e3 / plainWall).toFixed(0)} tok/s), graphs ${graphWall.toFixed(3)} ` +
    `(${(batch * 1e3 / graphWall).toFixed(0)} tok/s), ${(plainWall / graphWall).toFixed(2)}× faster`);
  console.log(rows.at(-1));
}
