// The decoder-only MoE transformer every supported family shares: embedding → N × (RMSNorm → attention →
// residual → RMSNorm → dense or MoE SwiGLU → residual) → RMSNorm → LM head. Built from an ArchitectureSpec.
//
// ids: [T]  T = new tokens, D = hidden, V = vocabulary.
import type { Backend } from '../backend/backend.ts';
import { fail } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { AttentionBlock } from '../nn/attention.ts';
import { KVCache } from '../nn/kv-cache.ts';
import { swiGlu, type SwiGluWeights } from '../nn/mlp.ts';
import { MoeLayer } from '../moe/moe-layer.ts';
import type { RoutingObserver } from '../moe/observer.ts';
import type { CausalLM, ForwardOptions, ModelCache } from './model.ts';
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

  newCache(): KVCache {
    return new KVCache(this.spec.layers.length);
  }

  setRoutingObserver(observer: RoutingObserver | undefined): void {
    this.observer = observer;
  }

  async forward(ids: Int32Array, cache: ModelCache, opts: ForwardOptions = {}): Promise<Tensor> {
    if (!(cache instanceof KVCache)) throw new Error('internal error: cache from another model');
    const T = ids.length;
    if (T === 0) fail('input', 'no token ids to run; give at least one');
    const bad = ids.findIndex((id) => id < 0 || id >= this.spec.vocabSize);
    if (bad >= 0) fail('input', `token id ${ids[bad]} is outside the vocabulary (0..${this.spec.vocabSize - 1}); use ids from this model's tokenizer`);
    const b = this.backend;
    const start = cache.length;
    const positionValues = Int32Array.from({ length: T }, (_, i) => start + i);
    const positions = b.upload(positionValues, [T], 'i32');
    const idTensor = b.upload(ids, [T], 'i32');
    const m = this.spec.multipliers;
    const residual = (branch: Tensor) => (m && m.residual !== 1 ? b.scale(branch, m.residual) : branch);
    let x = b.embedding(this.w.embed, idTensor);
    if (m && m.embedding !== 1) x = b.scale(x, m.embedding);
    for (const [i, layer] of this.w.layers.entries()) {
      const attended = layer.attention.forward(b.rmsNorm(x, layer.inputNorm, this.spec.rmsNormEps), positions, cache.layers[i]!, start);
      x = b.add(x, residual(attended));
      const h = b.rmsNorm(x, layer.postAttentionNorm, this.spec.rmsNormEps);
      const report = this.observer ? { observer: this.observer, layer: i, positions: positionValues } : undefined;
      const ffnOut = layer.ffn.kind === 'dense' ? swiGlu(b, layer.ffn.weights, h) : await layer.ffn.layer.forward(h, report);
      x = b.add(x, residual(ffnOut));
    }
    cache.length = start + T;
    const keep = Math.min(opts.lastTokens ?? T, T);
    const last = keep < T ? b.sliceRows(x, T - keep, keep) : x;
    const logits = b.linear(b.rmsNorm(last, this.w.finalNorm, this.spec.rmsNormEps), this.w.lmHead);
    return m && m.logitsDivisor !== 1 ? b.scale(logits, 1 / m.logitsDivisor) : logits;
  }
}
