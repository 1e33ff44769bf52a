// The sparse MoE feed-forward block as a pipeline of named stages, each a backend kernel:
//   route → sortByExpert → gatherRows → groupedGluLinear (gate|up, then SwiGLU) → groupedLinear (down) → scatterAddWeighted
// plus an optional shared expert (Qwen2-MoE) with its sigmoid gate. y = Σ_{k} w_k · E_{e_k}(x) (+ shared(x)).
//
// x: [T, D]  T = tokens, D = hidden, E = experts, K = top-k, N = T*K routed rows, F = expert FFN size.
// router: [E, D]; gateUp: [E, 2F, D] (gate rows then up rows); down: [E, D, F].
import type { Backend } from '../backend/backend.ts';
import type { Tensor } from '../core/tensor.ts';
import type { MoeFfnSpec } from '../models/spec.ts';
import { swiGlu, type SwiGluWeights } from '../nn/mlp.ts';
import type { RoutingObserver } from './observer.ts';

export interface MoeWeights {
  router: Tensor;
  /** [E]: the router's linear bias (GPT-OSS). */
  routerBias?: Tensor;
  /** f32 [E]: selection-only bias (DeepSeek e_score_correction_bias). */
  selectionBias?: Tensor;
  /** [E, 2F] and [E, D]: expert biases (GPT-OSS). */
  gateUpBias?: Tensor;
  downBias?: Tensor;
  gateUp: Tensor;
  down: Tensor;
  shared?: SwiGluWeights;
  /** [1, D]: the shared expert's gate. */
  sharedGate?: Tensor;
}

/** Where a layer reports routing: the observer plus what it needs to label a decision. */
export interface RoutingReport {
  observer: RoutingObserver;
  layer: number;
  positions: Int32Array;
}

export class MoeLayer {
  constructor(
    private readonly backend: Backend,
    readonly spec: MoeFfnSpec,
    private readonly w: MoeWeights,
  ) {}

  /** x [T, D] → [T, D]. When `report` is given, the routing decision is read back and handed to its observer. */
  async forward(x: Tensor, report?: RoutingReport): Promise<Tensor> {
    const b = this.backend;
    const routerInput = this.spec.routerInF32 && x.dtype !== 'f32' ? b.cast(x, 'f32') : x;
    const logits = b.linear(routerInput, this.w.router, this.w.routerBias); // [T, E]
    if (routerInput !== x) routerInput.dispose();
    const { weights, experts } = b.route(logits, this.spec.router, this.w.selectionBias); // [T, K] each
    logits.dispose();
    let out = this.routedExperts(x, weights, experts);
    if (this.w.shared) out = sumOf(b, out, this.sharedExpert(x, this.w.shared));
    if (report) {
      const [e, w] = await Promise.all([experts.read(), weights.read()]);
      report.observer.onRouting({
        layer: report.layer, positions: report.positions, experts: e as Int32Array, weights: w as Float32Array, topK: this.spec.router.topK,
      });
    }
    weights.dispose();
    experts.dispose();
    return out;
  }

  /**
   * The routed experts' weighted sum [T, D]: sort the slots by expert, gather their rows, SwiGLU FFN per expert,
   * weighted scatter back. Each intermediate is disposed once the op that reads it is queued (on a GPU its memory
   * serves the next op at once; at T = 16384 tokens they are hundreds of MB each).
   */
  private routedExperts(x: Tensor, weights: Tensor, experts: Tensor): Tensor {
    const b = this.backend;
    const { slots, offsets } = b.sortByExpert(experts, this.spec.numExperts); // [N], [E + 1]
    const rows = b.gatherRows(x, slots, this.spec.router.topK); // [N, D]
    const hidden = b.groupedGluLinear(rows, this.w.gateUp, offsets, this.w.gateUpBias, this.spec.activation); // [N, F]
    rows.dispose();
    const y = b.groupedLinear(hidden, this.w.down, offsets, this.w.downBias); // [N, D]
    hidden.dispose();
    offsets.dispose();
    const out = b.scatterAddWeighted(y, slots, weights, x.dim(0)); // [T, D]
    y.dispose();
    slots.dispose();
    return out;
  }

  /** The shared expert [T, D], scaled per token by sigmoid(x · sharedGate) when the model has that gate. */
  private sharedExpert(x: Tensor, w: SwiGluWeights): Tensor {
    const b = this.backend;
    const shared = swiGlu(b, w, x);
    if (!this.w.sharedGate) return shared;
    const logit = b.linear(x, this.w.sharedGate); // [T, 1]
    const gate = b.sigmoid(logit);
    const gated = b.scaleRows(shared, gate);
    for (const t of [logit, gate, shared]) t.dispose();
    return gated;
  }
}

/** a + b, both disposed. */
function sumOf(backend: Backend, a: Tensor, b: Tensor): Tensor {
  const sum = backend.add(a, b);
  a.dispose();
  b.dispose();
  return sum;
}
