// One step of a model over its cache: B × T new token ids in, the logits of the last positions out on the host.
// generate() and the decode benchmark both step through this, so how a step runs is decided in one place:
//
// - Captured and replayed (the default): per step size (T, lastTokens) the first call runs plainly — it compiles
//   and loads every kernel the step needs, which must not happen inside a capture — the second captures the step
//   (Backend.capture: a CUDA graph; on the CPU the same code path, each replay running the step again) and every
//   call from then on writes the step's ids, positions and cache rows into the captured step's input tensors and
//   replays it: on CUDA one graph launch instead of hundreds of kernel launches.
// - Plain (upload the inputs, run the step): with MOETS_CUDA_GRAPHS=0 (for comparison and debugging), while a
//   routing observer is attached (it reads routing back to the host inside the step), and for a step whose cache
//   storage moved since its last run (the first step after a growth; captured steps are then dropped, since they
//   address the old storage — give the cache a capacity to avoid this).
//
// ids: [B·T] row-major, B = the cache's sequences, T = new tokens per sequence; logits: f32 [B·T', V],
// T' = lastTokens, V = vocabulary.
import type { CapturedStep } from '../backend/backend.ts';
import { uploadStepInputs, type CausalLM, type ModelCache, type StepInputs, type StepValues } from '../models/model.ts';

export interface DecodeStepperOptions {
  /** Capture and replay steps; default: true unless the environment sets MOETS_CUDA_GRAPHS=0. */
  graphs?: boolean;
}

/** Whether steps are captured unless told otherwise: MOETS_CUDA_GRAPHS=0 turns it off. */
export function graphsByDefault(): boolean {
  return process.env['MOETS_CUDA_GRAPHS'] !== '0';
}

/** A captured step and the fixed input tensors it reads (written before each replay). */
interface ReplayedStep {
  step: CapturedStep;
  inputs: StepInputs;
}

export class DecodeStepper {
  private readonly graphs: boolean;
  private readonly captured = new Map<string, ReplayedStep>();
  /** Step sizes that have run plainly since the cache last moved (the next one of each is captured). */
  private readonly warm = new Set<string>();
  private storageVersion: number;
  /** Steps run by replaying a capture, and plainly (for tests and benchmarks). */
  readonly counts = { replayed: 0, plain: 0, captures: 0 };

  constructor(private readonly model: CausalLM, private readonly cache: ModelCache, opts: DecodeStepperOptions = {}) {
    this.graphs = opts.graphs ?? graphsByDefault();
    this.storageVersion = cache.storageVersion;
  }

  /** Runs `ids` through the model, extending the cache; the logits of the last `lastTokens` positions of each sequence. */
  async step(ids: Int32Array, lastTokens = 1): Promise<Float32Array> {
    const values = this.model.prepareStep(ids, this.cache);
    if (this.cache.storageVersion !== this.storageVersion) this.dropCaptures();
    const key = `${values.tokens}:${lastTokens}`;
    const replayed = this.graphs && this.model.routingObserver === undefined && this.warm.has(key)
      ? this.captured.get(key) ?? await this.capture(key, values, lastTokens)
      : undefined;
    let logits: Float32Array;
    if (replayed) {
      logits = await this.replay(replayed, values);
    } else {
      logits = await this.plain(values, lastTokens);
      this.counts.plain++;
      this.warm.add(key);
    }
    this.cache.advance(values.tokens);
    return logits;
  }

  /** Gives back what the stepper holds (captured steps and their memory); the cache stays the caller's. */
  dispose(): void {
    this.dropCaptures();
  }

  private async plain(values: StepValues, lastTokens: number): Promise<Float32Array> {
    const inputs = uploadStepInputs(this.model.backend, values);
    try {
      const logits = await this.model.runStep(inputs, this.cache, { lastTokens });
      try {
        return await readLogits(logits.read());
      } finally {
        logits.dispose();
      }
    } finally {
      for (const t of Object.values(inputs)) t.dispose();
    }
  }

  private async capture(key: string, values: StepValues, lastTokens: number): Promise<ReplayedStep> {
    const b = this.model.backend;
    const [B, T] = [values.batch, values.tokens];
    const inputs: StepInputs = { ids: b.zeros([B * T], 'i32'), positions: b.zeros([B, T], 'i32'), rows: b.zeros([B * T], 'i32') };
    const step = await b.capture(() => this.model.runStep(inputs, this.cache, { lastTokens }));
    const replayed = { step, inputs };
    this.captured.set(key, replayed);
    this.counts.captures++;
    return replayed;
  }

  private async replay({ step, inputs }: ReplayedStep, values: StepValues): Promise<Float32Array> {
    const b = this.model.backend;
    b.write(inputs.ids, values.ids);
    b.write(inputs.positions, values.positions);
    b.write(inputs.rows, values.rows);
    const logits = await step.replay(); // owned by the captured step: read, never disposed here
    this.counts.replayed++;
    return readLogits(logits.read());
  }

  private dropCaptures(): void {
    for (const { step, inputs } of this.captured.values()) {
      step.dispose();
      for (const t of Object.values(inputs)) t.dispose();
    }
    this.captured.clear();
    this.warm.clear();
    this.storageVersion = this.cache.storageVersion;
  }
}

async function readLogits(values: Promise<Float32Array | Int32Array>): Promise<Float32Array> {
  const logits = await values;
  if (!(logits instanceof Float32Array)) throw new Error('internal error: logits are not f32');
  return logits;
}
