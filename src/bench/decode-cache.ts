// The one place the decode benchmark gets the cache of `batch` sequences that it decodes in lockstep:
// model.newCache({ batch, capacity }), with room for every position the cell runs, so the cache never moves and
// the steps DecodeStepper captures stay valid.
import { fail } from '../core/errors.ts';
import type { CausalLM, ModelCache } from '../models/model.ts';

/** A cache for `batch` sequences of up to `capacity` positions each. */
export function newDecodeCache(model: CausalLM, batch: number, capacity: number): ModelCache {
  if (capacity > model.maxPositions) {
    fail('usage', `the prompt and steps need ${capacity} positions but the model has ${model.maxPositions}; pass fewer --prompt-tokens or --steps`);
  }
  return model.newCache({ batch, capacity });
}
