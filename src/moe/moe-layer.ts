// The sparse MoE feed-forward block as a pipeline of named stages, each a backend kernel:
//   route → sortByExpert → gatherRows → groupedLinear (gate|up) → siluMul → groupedLinear (down) → scatterAddWeighted
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
    const T = x.dim(0);
    const K = this.spec.router.topK;
    const routerInput = this.spec.routerInF32 && x.dtype !== 'f32' ? b.cast(x, 'f32') : x;
    const logits = b.linear(routerInput, this.w.router, this.w.routerBias);
    const { weights, experts } = b.route(logits, this.spec.router, this.w.selectionBias);
    const { slots, offsets } = b.sortByExpert(experts, this.spec.numExperts);
    const rows = b.gatherRows(x, slots, K);
    const hidden = b.siluMul(b.groupedLinear(rows, this.w.gateUp, offsets, this.w.gateUpBias), this.spec.activation);
    const y = b.groupedLinear(hidden, this.w.down, offsets, this.w.downBias);
    let out = b.scatterAddWeighted(y, slots, weights, T);
    if (this.w.shared) {
      let shared = swiGlu(b, this.w.shared, x);
      if (this.w.sharedGate) shared = b.scaleRows(shared, b.sigmoid(b.linear(x, this.w.sharedGate)));
      out = b.add(out, shared);
    }
    if (report) {
      const [e, w] = await Promise.all([experts.read(), weights.read()]);
      report.observer.onRouting({
        layer: report.layer, positions: report.positions, experts: e as Int32Array, weights: w as Float32Array, topK: K,
      });
    }
    for (const t of [logits, weights, experts, slots, offsets, rows, hidden, y]) t.dispose();
    if (routerInput !== x) routerInput.dispose();
    return out;
  }
}
