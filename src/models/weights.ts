// Reads a checkpoint's tensors onto a backend under canonical names, checking every shape against the
// architecture. Maps the layouts users have on disk onto one in-memory layout:
//   experts: fused `mlp.experts.gate_up_proj` [E, 2F, D] + `down_proj` [E, D, F] (transformers 5), or one tensor per
//            expert `mlp.experts.{e}.{gate,up,down}.weight` (the Hub) stacked into the same fused tensors;
//   dense SwiGLU: `gate_proj` + `up_proj` concatenated into one [2F, D] weight;
//   attention: `q_proj`, `k_proj`, `v_proj` (weights, and biases where present) stacked by rows into one (`stacked`);
//   a layout's expertFormat (GPT-OSS): its stored expert tensors converted to the canonical ones (derived tensors).
import type { Backend } from '../backend/backend.ts';
import type { DType, FloatDType } from '../core/dtype.ts';
import { assert, fail } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { Checkpoint } from '../io/checkpoint.ts';
import { moetsDType } from '../io/safetensors.ts';
import type { SwiGluWeights } from '../nn/mlp.ts';
import { gptOssExpertTensors } from './gpt-oss-experts.ts';
import type { WeightLayout } from './spec.ts';

export interface RawTensor { bytes: Uint8Array; dtype: DType }

/** Stored tensors by canonical name, shape-checked: float weights, or raw bytes (U8, e.g. MXFP4 blocks). */
export interface StoredTensors {
  float(name: string, shape: number[]): RawTensor;
  bytes(name: string, shape: number[]): Uint8Array;
}

/** A canonical tensor of `shape` built from differently laid-out stored tensors. */
export type DerivedTensor = (shape: number[], stored: StoredTensors) => RawTensor;

/**
 * What the model builder (load.ts) reads weights through: a checkpoint (WeightReader) or generated weights
 * (random-weights.ts). Tensors come back on the builder's backend in the compute dtype unless `as` says otherwise.
 */
export interface Weights {
  has(name: string): boolean;
  tensor(name: string, shape: number[], as?: FloatDType): Tensor;
  optional(name: string, shape: number[]): Tensor | undefined;
  swiGlu(prefix: string, F: number, D: number): SwiGluWeights;
  /** The tensors `parts` (each checked as `tensor` checks it) stacked by rows in that order: [Σ shape[0], ...rest]. */
  stacked(parts: readonly StackedPart[]): Tensor;
  experts(prefix: string, E: number, F: number, D: number): { gateUp: Tensor; down: Tensor };
}

/** One tensor of Weights.stacked: its canonical name and shape (all parts share the shape past dim 0). */
export interface StackedPart {
  name: string;
  shape: number[];
}

/** The shape of `parts` stacked by rows; they must agree past dim 0 (a bug in the builder otherwise). */
export function stackedShape(parts: readonly StackedPart[]): number[] {
  const rest = parts[0]!.shape.slice(1);
  assert(parts.every((p) => p.shape.slice(1).join() === rest.join()), `stacked: ${parts.map((p) => `${p.name} [${p.shape.join(', ')}]`).join(', ')}`);
  return [parts.reduce((n, p) => n + p.shape[0]!, 0), ...rest];
}

export class WeightReader implements Weights {
  /** canonical name → name in the checkpoint */
  private readonly names = new Map<string, string>();
  /** canonical name → how to build it from stored tensors in another layout (expertFormat) */
  private readonly derived: Map<string, DerivedTensor>;
  private readonly stored: StoredTensors = {
    float: (name, shape) => this.raw(name, shape),
    bytes: (name, shape) => this.rawBytes(name, shape),
  };

  constructor(
    private readonly checkpoint: Checkpoint,
    private readonly backend: Backend,
    private readonly dtype: FloatDType,
    private readonly layout: WeightLayout,
  ) {
    for (const name of checkpoint.names()) {
      const canonical = layout.renames.reduce((n, [from, to]) => n.replace(from, to), name);
      this.names.set(canonical, name);
    }
    this.derived = layout.expertFormat === 'gpt-oss' ? gptOssExpertTensors(this.names.keys()) : new Map();
  }

  has(name: string): boolean {
    return this.names.has(name) || this.derived.has(name);
  }

  /** The tensor `name` with exactly `shape`, converted to the compute dtype. */
  /** `as`: keep this tensor in another dtype than the compute dtype (f32 router weights). */
  tensor(name: string, shape: number[], as: FloatDType = this.dtype): Tensor {
    const derive = this.derived.get(name);
    const { bytes, dtype } = derive ? derive(shape, this.stored) : this.raw(name, shape);
    return this.backend.uploadBytes(bytes, dtype, shape, as);
  }

  optional(name: string, shape: number[]): Tensor | undefined {
    return this.has(name) ? this.tensor(name, shape) : undefined;
  }

  /** Weights named `${prefix}.{gate,up}_proj.weight` [F, D] and `down_proj` [D, F], gate and up fused. */
  swiGlu(prefix: string, F: number, D: number): SwiGluWeights {
    return {
      gateUp: this.stacked(['gate_proj', 'up_proj'].map((p) => ({ name: `${prefix}.${p}.weight`, shape: [F, D] }))),
      down: this.tensor(`${prefix}.down_proj.weight`, [D, F]),
    };
  }

  stacked(parts: readonly StackedPart[]): Tensor {
    const shape = stackedShape(parts);
    const raws = parts.map((p) => this.raw(p.name, p.shape));
    return this.upload(concat(raws.map((r) => r.bytes)), sameDType(raws, parts.map((p) => p.name).join(', ')), shape);
  }

  /** Expert weights under `${prefix}` (e.g. model.layers.3.mlp.experts) as gateUp [E, 2F, D] and down [E, D, F]. */
  experts(prefix: string, E: number, F: number, D: number): { gateUp: Tensor; down: Tensor } {
    if (this.has(`${prefix}.gate_up_proj`)) {
      return { gateUp: this.tensor(`${prefix}.gate_up_proj`, [E, 2 * F, D]), down: this.tensor(`${prefix}.down_proj`, [E, D, F]) };
    }
    const p = this.layout.expertProjections;
    if (!this.has(`${prefix}.0.${p.gate}.weight`)) {
      fail('format', `${this.checkpoint.dir}: missing expert weights: neither ${prefix}.gate_up_proj nor ${prefix}.0.${p.gate}.weight; is this checkpoint complete?`);
    }
    const gateUp: Uint8Array[] = [];
    const down: Uint8Array[] = [];
    const dtypes: { dtype: DType }[] = [];
    for (let e = 0; e < E; e++) {
      for (const [proj, shape, into] of [[p.gate, [F, D], gateUp], [p.up, [F, D], gateUp], [p.down, [D, F], down]] as const) {
        const part = this.raw(`${prefix}.${e}.${proj}.weight`, [...shape]);
        into.push(part.bytes);
        dtypes.push(part);
      }
    }
    const dtype = sameDType(dtypes, prefix);
    return { gateUp: this.upload(concat(gateUp), dtype, [E, 2 * F, D]), down: this.upload(concat(down), dtype, [E, D, F]) };
  }

  private upload(bytes: Uint8Array, dtype: DType, shape: number[]): Tensor {
    return this.backend.uploadBytes(bytes, dtype, shape, this.dtype);
  }

  private raw(name: string, shape: number[]): { bytes: Uint8Array; dtype: DType } {
    const { stored, info } = this.storedEntry(name, shape);
    const dtype = moetsDType(info.dtype);
    if (dtype === undefined || dtype === 'i32') {
      fail('unsupported', `${this.checkpoint.dir}: tensor ${stored} has dtype ${info.dtype}; moets loads F32, BF16 and F16 weights`);
    }
    // Byte counts need no check here: the safetensors header was validated (bytes = shape × dtype size) on open.
    return { bytes: this.checkpoint.readBytes(stored), dtype };
  }

  /** A stored U8 tensor's bytes (MXFP4 blocks and scales). */
  private rawBytes(name: string, shape: number[]): Uint8Array {
    const { stored, info } = this.storedEntry(name, shape);
    if (info.dtype !== 'U8') fail('unsupported', `${this.checkpoint.dir}: tensor ${stored} has dtype ${info.dtype}; it must be U8`);
    return this.checkpoint.readBytes(stored);
  }

  /** The stored name and header entry of canonical `name`, whose shape must be `shape`. */
  private storedEntry(name: string, shape: number[]) {
    const stored = this.names.get(name);
    if (stored === undefined) fail('format', `${this.checkpoint.dir}: missing tensor ${name}; the checkpoint does not match its config.json`);
    const info = this.checkpoint.info(stored);
    if (info.shape.join() !== shape.join()) {
      fail('format', `${this.checkpoint.dir}: tensor ${stored} has shape [${info.shape.join(', ')}] but config.json implies [${shape.join(', ')}]`);
    }
    return { stored, info };
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function sameDType(parts: { dtype: DType }[], prefix: string): DType {
  const dtype = parts[0]!.dtype;
  if (parts.some((p) => p.dtype !== dtype)) fail('unsupported', `${prefix}: tensors stored together mix dtypes; convert the checkpoint to one dtype`);
  return dtype;
}
