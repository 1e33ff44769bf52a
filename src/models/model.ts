// What every causal language model in moets offers, whatever its family: a forward pass over new token ids
// that extends a KV cache, and the facts `inspect` and generation need.
import type { Backend } from '../backend/backend.ts';
import type { Tensor } from '../core/tensor.ts';
import type { RoutingObserver } from '../moe/observer.ts';

/** Per-sequence state carried between forward calls: cached keys/values and how many positions they hold. */
export interface ModelCache {
  /** Positions already processed (the next token's position). */
  readonly length: number;
}

export interface ForwardOptions {
  /** Compute logits only for the last `lastTokens` positions (generation needs 1); default: all. */
  lastTokens?: number;
}

export interface CausalLM {
  readonly backend: Backend;
  readonly modelType: string;
  readonly vocabSize: number;
  /** Token ids that end generation (from config.json / generation_config.json). */
  readonly eosTokenIds: readonly number[];
  /** The longest sequence the model was made for (max_position_embeddings). */
  readonly maxPositions: number;
  newCache(): ModelCache;
  /** ids: new tokens [T] continuing `cache` (which this call extends) → logits f32 [T', V]. */
  forward(ids: Int32Array, cache: ModelCache, opts?: ForwardOptions): Promise<Tensor>;
  /** Attach (or detach with undefined) an observer of every MoE layer's routing decisions. */
  setRoutingObserver(observer: RoutingObserver | undefined): void;
}
