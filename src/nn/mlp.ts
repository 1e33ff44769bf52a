// Dense SwiGLU feed-forward: down(silu(gate(x)) * up(x)), with gate and up fused into one [2F, D] weight
// (gate rows first) so that one matmul feeds siluMul. Used for dense layers and shared experts.
//
// x: [T, D]; gateUp: [2F, D]; down: [D, F].
import type { Backend } from '../backend/backend.ts';
import type { Tensor } from '../core/tensor.ts';

export interface SwiGluWeights {
  gateUp: Tensor;
  down: Tensor;
}

/** x [T, D] → [T, D]; the intermediates are disposed as soon as the next op is queued. */
export function swiGlu(backend: Backend, w: SwiGluWeights, x: Tensor): Tensor {
  const projected = backend.linear(x, w.gateUp); // [T, 2F]
  const hidden = backend.siluMul(projected); // [T, F]
  projected.dispose();
  const out = backend.linear(hidden, w.down);
  hidden.dispose();
  return out;
}
