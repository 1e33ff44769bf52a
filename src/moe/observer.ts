// Routing observers: whoever wants to see which experts handled which tokens (statistics, the audit log,
// a dashboard). A MoE layer reads its routing back to the host only when an observer is attached.
//
// T = tokens in this forward call, K = experts per token.

export interface RoutingDecision {
  /** Index of the decoder layer. */
  layer: number;
  /** Absolute position of each of the T tokens. */
  positions: Int32Array;
  /** i32 [T * K]: experts chosen for token t at [t*K, (t+1)*K), best first. */
  experts: Int32Array;
  /** f32 [T * K]: the weight each chosen expert's output gets. */
  weights: Float32Array;
  topK: number;
}

export interface RoutingObserver {
  onRouting(decision: RoutingDecision): void;
}
