// The decoder-only MoE transformer every supported family shares: embedding → N × (RMSNorm → attention →
// residual → RMSNorm → dense or MoE SwiGLU → residual) → RMSNorm → LM head. Built from an ArchitectureSpec.
//
// A step runs B sequences in lockstep (the cache's batch); its positions and cache rows come in as device tensors
// (model.ts: prepareStep on the host, runStep on the device), so runStep can be captured and replayed.
//
// ids: [B·T]  B = sequences, T = new tokens per sequence, N = B·T rows, D = hidden, V = vocabulary.
import type { Backend } from '../backend/backend.ts';
import type { FloatDType } from '../core/dtype.ts';
import { fail } from '../core/errors.ts';
import { replaced, type Tensor } from '../core/tensor.ts';
import type { AttentionBlock, StepContext } from '../nn/attention.ts';
import { KVCache } from '../nn/kv-cache.ts';
import { swiGlu, type SwiGluWeights } from '../nn/mlp.ts';
import { MoeLayer } from '../moe/moe-layer.ts';
import type { RoutingObserver } from '../moe/observer.ts';
import { forwardStep, type CacheOptions, type CausalLM, type ForwardOptions, type ModelCache, type StepInputs, type StepValues } from './model.ts';
import type { ArchitectureSpec } from './spec.ts';

export interface DecoderLayer {
  inputNorm: Tensor;
  postAttentionNorm: Tensor;
  attention: AttentionBlock;
  ffn: { kind: 'dense'; weights: SwiGluWeights } | { kind: 'moe'; layer: MoeLayer };
}

export interface DecoderWeights {
  embed: Tensor;
  finalNorm: Tensor;
  lmHead: Tensor;
  layers: DecoderLayer[];
}

export class DecoderLM implements CausalLM {
  private observer: RoutingObserver | undefined;

  constructor(
    readonly backend: Backend,
    readonly spec: ArchitectureSpec,
    private readonly w: DecoderWeights,
  ) {}

  get modelType(): string { return this.spec.modelType; }
  get vocabSize(): number { return this.spec.vocabSize; }
  get eosTokenIds(): readonly number[] { return this.spec.eosTokenIds; }
  get maxPositions(): number { return this.spec.maxPositions; }

  get routingObserver(): RoutingObserver | undefined { return this.observer; }

  /** A cache of opts.batch sequences (default 1) in the activations' dtype, with opts.capacity positions allocated. */
  newCache(opts: CacheOptions = {}): KVCache {
    const shapes = this.w.layers.map((layer) => layer.attention.cacheShape);
    return new KVCache(this.backend, shapes, this.w.embed.dtype as FloatDType, opts);
  }

  setRoutingObserver(observer: RoutingObserver | undefined): void {
    this.observer = observer;
  }

  forward(ids: Int32Array, cache: ModelCache, opts: ForwardOptions = {}): Promise<Tensor> {
    return forwardStep(this, ids, cache, opts);
  }

  prepareStep(ids: Int32Array, cache: ModelCache): StepValues {
    const kv = kvCacheOf(cache);
    if (ids.length === 0) fail('input', 'no token ids to run; give at least one');
    if (ids.length % kv.batch !== 0) fail('input', `${ids.length} token ids do not split evenly over the cache's ${kv.batch} sequences`);
    const bad = ids.findIndex((id) => id < 0 || id >= this.spec.vocabSize);
    if (bad >= 0) fail('input', `token id ${ids[bad]} is outside the vocabulary (0..${this.spec.vocabSize - 1}); use ids from this model's tokenizer`);
    return kv.stepValues(ids);
  }

  async runStep(inputs: StepInputs, cache: ModelCache, opts: ForwardOptions = {}): Promise<Tensor> {
    const kv = kvCacheOf(cache);
    const [B, T] = [inputs.positions.dim(0), inputs.positions.dim(1)];
    if (B !== kv.batch) throw new Error(`internal error: a step of ${B} sequences for a cache of ${kv.batch}`);
    const step: StepContext = { batch: B, tokens: T, positions: inputs.positions, rows: inputs.rows };
    const b = this.backend;
    // Only an attached observer needs the positions on the host (its layers read their routing back anyway).
    const observed = this.observer ? (await inputs.positions.read()) as Int32Array : undefined;
    const m = this.spec.multipliers;
    const eps = this.spec.rmsNormEps;
    // Each intermediate is disposed once the op reading it is queued: the residual stream's old value, the norms'
    // outputs and the branches (x + branch, the branch scaled first where the model says so).
    const addResidual = (x: Tensor, branch: Tensor): Tensor => {
      const scaled = m && m.residual !== 1 ? b.scale(branch, m.residual) : branch;
      const sum = b.add(x, scaled);
      for (const t of [x, branch, scaled]) t.dispose();
      return sum;
    };
    let x = b.embedding(this.w.embed, inputs.ids); // [N, D]
    if (m && m.embedding !== 1) x = replaced(x, b.scale(x, m.embedding));
    for (const [i, layer] of this.w.layers.entries()) {
      const normed = b.rmsNorm(x, layer.inputNorm, eps);
      const attended = layer.attention.forward(normed, step, kv.layers[i]!);
      normed.dispose();
      x = addResidual(x, attended);
      const h = b.rmsNorm(x, layer.postAttentionNorm, eps);
      const report = this.observer && observed ? { observer: this.observer, layer: i, positions: observed } : undefined;
      const ffnOut = layer.ffn.kind === 'dense' ? swiGlu(b, layer.ffn.weights, h) : await layer.ffn.layer.forward(h, report);
      h.dispose();
      x = addResidual(x, ffnOut);
    }
    const kept = Math.min(opts.lastTokens ?? T, T);
    const last = lastRows(b, x, B, T, kept);
    const normed = b.rmsNorm(last.reshape([B * kept, x.dim(1)]), this.w.finalNorm, eps); // [B·kept, D]
    x.dispose();
    last.dispose();
    const logits = b.linear(normed, this.w.lmHead);
    normed.dispose();
    return m && m.logitsDivisor !== 1 ? replaced(logits, b.scale(logits, 1 / m.logitsDivisor)) : logits;
  }
}

function kvCacheOf(cache: ModelCache): KVCache {
  if (!(cache instanceof KVCache)) throw new Error('internal error: cache from another model');
  return cache;
}

/**
 * The last `keep` of each sequence's T rows of x [B·T, D]: x itself when keep = T, else a new tensor of B·keep rows
 * ([keep, D] when B = 1, [B, keep·D] otherwise: reshape it to [B·keep, D]; a new tensor, so it can be disposed).
 */
function lastRows(b: Backend, x: Tensor, B: number, T: number, keep: number): Tensor {
  if (keep === T) return x;
  if (B === 1) return b.sliceRows(x, T - keep, keep);
  const D = x.dim(1);
  return b.sliceColumns(x.reshape([B, T * D]), (T - keep) * D, keep * D);
}
