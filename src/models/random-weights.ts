// Random weights for a whole model, made on its device: a Weights source for the model builder (load.ts) whose
// tensors come from Backend.randomNormal instead of a checkpoint, so a full-size model (47 B parameters) exists in
// about a second without its files and without passing through host memory. Initialised as transformers'
// from_config does: linear and embedding weights N(0, initializer_range), RMSNorm weights 1, biases 0. For
// benchmarks: the values are reproducible (a seed per tensor name) but mean nothing.
import type { Backend } from '../backend/backend.ts';
import { getBackend, type DeviceChoice } from '../backend/registry.ts';
import { fromF32, type FloatDType } from '../core/dtype.ts';
import type { Tensor } from '../core/tensor.ts';
import type { ModelConfig } from '../io/config.ts';
import type { SwiGluWeights } from '../nn/mlp.ts';
import type { DecoderLM } from './decoder.ts';
import { buildDecoder } from './load.ts';
import { architectureOf } from './registry.ts';
import type { ArchitectureSpec } from './spec.ts';
import { stackedShape, type StackedPart, type Weights } from './weights.ts';

export interface RandomWeightOptions {
  /** Mixed with each tensor's name into its stream; an integer in [0, 2^20). Default 0. */
  seed?: number;
  /** Standard deviation of the random weights; default the config's initializer_range (else 0.02). */
  std?: number;
}

/** Tensors by canonical name, generated; every one made is kept so that `dispose` frees them all at once. */
export class RandomWeights implements Weights {
  private readonly made: Tensor[] = [];

  constructor(
    private readonly backend: Backend,
    private readonly spec: ArchitectureSpec,
    private readonly dtype: FloatDType,
    private readonly std: number,
    private readonly seed = 0,
  ) {}

  /** Every tensor exists, except a separate LM head when the model ties it to the embedding. */
  has(name: string): boolean {
    return !(name === 'lm_head.weight' && this.spec.tieWordEmbeddings);
  }

  tensor(name: string, shape: number[], as: FloatDType = this.dtype): Tensor {
    const t = this.generate(name, shape, as);
    this.made.push(t);
    return t;
  }

  /** Each part made as `tensor` makes it (same values), copied into one tensor at its rows. */
  stacked(parts: readonly StackedPart[]): Tensor {
    const t = this.backend.zeros(stackedShape(parts), this.dtype);
    let at = 0;
    for (const p of parts) {
      const part = this.generate(p.name, p.shape, this.dtype);
      this.backend.copyRows(t, part, at);
      part.dispose();
      at += p.shape[0]!;
    }
    this.made.push(t);
    return t;
  }

  optional(name: string, shape: number[]): Tensor | undefined {
    return this.has(name) ? this.tensor(name, shape) : undefined;
  }

  /** gate and up fused as the builder keeps them: [2F, D], and down [D, F]. */
  swiGlu(prefix: string, F: number, D: number): SwiGluWeights {
    return { gateUp: this.tensor(`${prefix}.gate_up_proj.weight`, [2 * F, D]), down: this.tensor(`${prefix}.down_proj.weight`, [D, F]) };
  }

  /** The canonical fused layout: gateUp [E, 2F, D], down [E, D, F]. */
  experts(prefix: string, E: number, F: number, D: number): { gateUp: Tensor; down: Tensor } {
    return { gateUp: this.tensor(`${prefix}.gate_up_proj`, [E, 2 * F, D]), down: this.tensor(`${prefix}.down_proj`, [E, D, F]) };
  }

  /** Bytes of every tensor made. */
  get bytes(): number {
    return this.made.reduce((sum, t) => sum + t.storage.byteLength, 0);
  }

  /** Gives every tensor made back to the backend (the model built from them must not run again). */
  dispose(): void {
    for (const t of this.made.splice(0)) t.dispose();
  }

  /** Tensor `name`: norm weights 1, biases 0, others N(0, std) from the name's stream. */
  private generate(name: string, shape: number[], as: FloatDType): Tensor {
    const n = shape.reduce((a, d) => a * d, 1);
    if (/norm\.weight$/.test(name)) return this.backend.upload(fromF32(new Float32Array(n).fill(1), as), shape, as);
    if (/bias$/.test(name)) return this.backend.zeros(shape, as);
    return this.backend.randomNormal(shape, as, this.seedOf(name), this.std);
  }

  /** The stream of tensor `name`: the seed in the high bits, an FNV-1a hash of the name in the low 32. */
  private seedOf(name: string): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    return this.seed * 2 ** 32 + (h >>> 0);
  }
}

export interface RandomModelOptions extends RandomWeightOptions {
  device?: DeviceChoice;
  /** dtype the weights are made and computed in; default bf16. */
  dtype?: FloatDType;
}

/** The model `config` (a config.json) describes, with random weights on the device; `weights.dispose()` frees them. */
export function randomModel(config: ModelConfig, opts: RandomModelOptions = {}): { model: DecoderLM; weights: RandomWeights } {
  const spec = architectureOf(config);
  const backend = getBackend(opts.device ?? 'cpu');
  const std = opts.std ?? (config.has('initializer_range') ? config.positive('initializer_range') : 0.02);
  const weights = new RandomWeights(backend, spec, opts.dtype ?? 'bf16', std, opts.seed ?? 0);
  return { model: buildDecoder(backend, spec, weights), weights };
}
