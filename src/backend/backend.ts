// The Backend interface: every typed kernel a model needs, implemented once per device (cpu/, cuda/ later).
// Shared code calls only these. Ops return new tensors and may queue work asynchronously (a GPU stream);
// only `read` waits for results. Every backend must pass test/conformance.
//
// Legend for shapes: T = tokens, D = hidden/feature size, H = heads, Hkv = key/value heads, Dh = head dim,
// Dv = value head dim, B = sequences in a batch, S = cache rows per sequence (its capacity), R = rows of a tensor,
// E = experts, K = experts per token (top-k), N = routed rows (T*K), F = expert FFN size.
//
// Steps that repeat (decode) can be captured once and replayed (`capture`): on CUDA a graph whose kernel arguments
// are baked in, so whatever changes from step to step is read from device memory (`positions`, `writeRows`' rows)
// and written there with `write` before each replay.
import type { DType, FloatDType, HostArray } from '../core/dtype.ts';
import { assert } from '../core/errors.ts';
import type { Shape, Tensor } from '../core/tensor.ts';

export type DeviceName = 'cpu' | 'cuda';

/** How a router turns logits into expert choices and weights. Variants are data, chosen by model config. */
export interface RouterSpec {
  topK: number;
  /**
   * softmax-topk: softmax over all experts, then top-k (Mixtral, Qwen-MoE, OLMoE).
   * topk-softmax: top-k of the logits, then softmax over those k (GPT-OSS, Granite-MoE).
   * sigmoid: sigmoid scores; experts chosen by score + selection bias, weighted by the unbiased score (DeepSeek-V3).
   */
  scoring: 'softmax-topk' | 'topk-softmax' | 'sigmoid';
  /** Divide the k weights by their sum (+1e-20 for sigmoid scores, as DeepSeek does). */
  normalize: boolean;
  /** Multiplies the final weights (DeepSeek's routed_scaling_factor); default 1. */
  scale?: number;
  /**
   * Group-limited selection (DeepSeek-V3): experts split into `count` equal groups, each scored by the sum of its
   * two best (biased) scores; only experts of the `keep` best groups may be chosen.
   */
  groups?: { count: number; keep: number };
}

/** GPT-OSS's clamped SwiGLU: g = min(gate, limit), u = clamp(up, ±limit), out = (u + 1) · g · σ(alpha · g). */
export interface ClampedGlu {
  alpha: number;
  limit: number;
}

export interface RopeOptions {
  /** Leading dims of each head that rotate; the rest pass through (partial rotary). */
  rotaryDim: number;
  /** 'half': rotate_half pairs (i, i + R/2), as Llama/Mixtral/Qwen; 'interleaved': pairs (2i, 2i+1). */
  pairing: 'half' | 'interleaved';
  /** Multiplies cos and sin (YaRN's attention factor); 1 for plain RoPE. */
  attentionScaling: number;
}

export interface AttentionOptions {
  /** Multiplies q·k before softmax, usually 1/sqrt(Dh). */
  scale: number;
  /**
   * i32 [B, T]: the absolute position of each query; key row j of a sequence sits at position j. Query (b, t) at
   * p = positions[b, t] sees key rows j of sequence b with 0 ≤ j ≤ p (with a window: p - window < j ≤ p). Rows
   * past p are never read. The op reads the positions itself (from device memory on a GPU), so a captured step
   * replays with new positions. Every p must be in [0, S).
   */
  positions: Tensor;
  /** Sliding window: a query at position p sees keys at positions > p - window. Undefined: no window. */
  window?: number;
  /** f32 [H]: a per-head logit that joins each softmax denominator but attends to nothing (GPT-OSS sinks). */
  sinks?: Tensor;
}

/** Sizes of one attention call: B sequences, T queries and S cache rows each, H/Hkv heads, Dh/Dv head dims. */
export interface AttentionSizes {
  B: number; T: number; S: number; H: number; Hkv: number; Dh: number; Dv: number;
}

/** The sizes of attention(q, k, v, opts), checked against each other (every backend's first step). */
export function attentionSizes(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): AttentionSizes {
  assert(q.rank === 4 && k.rank === 4 && v.rank === 4, `attention takes q [B, T, H, Dh], k [B, S, Hkv, Dh], v [B, S, Hkv, Dv]; got q ${q}, k ${k}, v ${v}`);
  const [B, T, H, Dh] = [q.dim(0), q.dim(1), q.dim(2), q.dim(3)];
  const [S, Hkv, Dv] = [k.dim(1), k.dim(2), v.dim(3)];
  assert(k.dim(0) === B && v.dim(0) === B && v.dim(1) === S && v.dim(2) === Hkv && k.dim(3) === Dh && Hkv > 0 && H % Hkv === 0,
    `attention: q ${q}, k ${k}, v ${v}`);
  const p = opts.positions;
  assert(p.dtype === 'i32' && p.rank === 2 && p.dim(0) === B && p.dim(1) === T, `attention: positions ${p} for q ${q}`);
  return { B, T, S, H, Hkv, Dh, Dv };
}

/** The first weight row of each part of linearSplit(x, w, sizes, bias), the sizes checked (every backend's first step). */
export function splitStarts(x: Tensor, w: Tensor, sizes: readonly number[], bias?: Tensor): number[] {
  const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, n) => a + n, 0));
  const total = sizes.reduce((a, n) => a + n, 0);
  assert(w.rank === 2 && x.dim(-1) === w.dim(1) && sizes.length > 0 && sizes.every((n) => Number.isInteger(n) && n >= 0) &&
    total === w.dim(0) && (!bias || bias.size === total), `linearSplit: ${x} · ${w}ᵀ into parts [${sizes.join(', ')}]${bias ? ` + ${bias}` : ''}`);
  return starts;
}

/** A step recorded by Backend.capture. */
export interface CapturedStep {
  /**
   * Runs the step again and gives its output. On CUDA it is the same tensor on every replay, holding the latest
   * replay's values (read it before the next replay; do not dispose it: the step owns it). On the CPU a new one.
   */
  replay(): Promise<Tensor>;
  /** Gives back what the step holds (the graph and the memory its ops use); its output is invalid afterwards. */
  dispose(): void;
}

export interface Backend {
  readonly name: DeviceName;

  // ---- memory -----------------------------------------------------------------------------------------
  /** A tensor holding `data` (whose array type matches `dtype`, see HostArray). */
  upload(data: HostArray, shape: Shape, dtype: DType): Tensor;
  /** A tensor from raw little-endian bytes of `sourceDType` (as in a safetensors file), converted to `dtype`. */
  uploadBytes(bytes: Uint8Array, sourceDType: DType, shape: Shape, dtype: DType): Tensor;
  zeros(shape: Shape, dtype: DType): Tensor;
  /** Values on the host: float dtypes widen to f32, i32 stays i32. Waits for queued work. */
  read(t: Tensor): Promise<Float32Array | Int32Array>;
  /**
   * Host values into an existing tensor (same element count, `data` typed as for upload), queued in stream order:
   * work queued before sees the old values, work queued after the new ones. How a replayed step gets its inputs.
   */
  write(t: Tensor, data: HostArray): void;
  release(t: Tensor): void;

  // ---- captured steps --------------------------------------------------------------------------------
  /**
   * Records `body` (ops on tensors that outlive the step) as one step to replay. The body must queue device work
   * only: no read, upload or write (on CUDA those fail during capture), and everything that changes between
   * replays must come from tensors it reads (fill them with `write` before each replay). Capturing runs nothing:
   * the first replay does. On CUDA a graph (launch overhead gone); on the CPU each replay runs body again.
   */
  capture(body: () => Promise<Tensor>): Promise<CapturedStep>;

  // ---- elementwise and layout ------------------------------------------------------------------------
  cast(x: Tensor, dtype: FloatDType): Tensor;
  /** a + b, same shape. */
  add(a: Tensor, b: Tensor): Tensor;
  /** a * b, same shape. */
  mul(a: Tensor, b: Tensor): Tensor;
  /** x [R, D] with each row r multiplied by s[r]; s: [R] or [R, 1]. */
  scaleRows(x: Tensor, s: Tensor): Tensor;
  sigmoid(x: Tensor): Tensor;
  /** x * s for a scalar s. */
  scale(x: Tensor, s: number): Tensor;
  /** min(max(x, lo), hi) elementwise. */
  clamp(x: Tensor, lo: number, hi: number): Tensor;
  /** Softmax over the last dimension, computed in f32. */
  softmax(x: Tensor): Tensor;
  /** rows [start, start+count) of x [R, ...] as a new tensor. */
  sliceRows(x: Tensor, start: number, count: number): Tensor;
  /** columns [start, start+count) of x [R, C] → [R, count]. */
  sliceColumns(x: Tensor, start: number, count: number): Tensor;
  /** a [T, H, A] and b [T, Hb, B] joined per head → [T, H, A+B]; Hb = 1 broadcasts b to every head (MLA's k_pe). */
  concatHeads(a: Tensor, b: Tensor): Tensor;
  /** Write src [T, ...] into dst [S, ...] at rows [at, at+T), in place (contiguous copies: KV cache growth). */
  copyRows(dst: Tensor, src: Tensor, at: number): void;
  /**
   * dst [R, ...] row rows[t] = src [T, ...] row t, in place (the KV cache append: rows = b · S + position); rows:
   * i32 [T], read by the op itself (from device memory on a GPU), each in [0, R) and all different.
   */
  writeRows(dst: Tensor, src: Tensor, rows: Tensor): void;

  // ---- dense layers ----------------------------------------------------------------------------------
  /** x [T, Kin] · w [Nout, Kin]ᵀ (+ bias [Nout]) → [T, Nout], accumulated in f32. Output dtype = x's. */
  linear(x: Tensor, w: Tensor, bias?: Tensor): Tensor;
  /**
   * Several linears of one input whose weights are stacked by rows (attention's q, k, v): w [N0 + N1 + …, Kin],
   * bias [ΣNi] → one tensor [T, Ni] per part, each equal to linear(x, rows of part i, its bias). One weight pass
   * where a backend can (CUDA at T = 1: one GEMV launch for all parts).
   */
  linearSplit(x: Tensor, w: Tensor, sizes: readonly number[], bias?: Tensor): Tensor[];
  /** table [V, D] rows picked by ids i32 [T] → [T, D]. Ids must be in range (callers validate). */
  embedding(table: Tensor, ids: Tensor): Tensor;
  /** x [R, D] normalised by the root mean square of each row, times w [D]; computed in f32. */
  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor;
  /** x [T, H, Dh] rotated by position: angle = positions[t] * invFreq[i], invFreq: f32 [rotaryDim/2]. */
  rope(x: Tensor, positions: Tensor, invFreq: Tensor, opts: RopeOptions): Tensor;
  /**
   * Causal attention with grouped KV heads, per sequence: q [B, T, H, Dh], k [B, S, Hkv, Dh], v [B, S, Hkv, Dv]
   * → [B, T, H, Dv]; which keys each query sees comes from opts.positions (see AttentionOptions).
   */
  attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor;
  /** SwiGLU on a fused projection: x [R, 2F] (gate half, then up half) → silu(gate) * up, [R, F]; or ClampedGlu. */
  siluMul(x: Tensor, clamped?: ClampedGlu): Tensor;

  // ---- MoE stages ------------------------------------------------------------------------------------
  /**
   * Router: logits [T, E] → weights f32 [T, K] and expert ids i32 [T, K] (highest selection score first).
   * selectionBias: f32 [E], added to the scores for choosing only (DeepSeek's e_score_correction_bias).
   */
  route(logits: Tensor, spec: RouterSpec, selectionBias?: Tensor): { weights: Tensor; experts: Tensor };
  /**
   * Sort the T*K routed slots by expert (stable, so token order is kept within an expert).
   * slots: i32 [N], the flat index t*K + j of each sorted slot; offsets: i32 [E + 1], expert e owns
   * sorted rows [offsets[e], offsets[e+1]).
   */
  sortByExpert(experts: Tensor, numExperts: number): { slots: Tensor; offsets: Tensor };
  /** Rows of x [T, D] for sorted slots: row n = x[slots[n] / K] → [N, D]. */
  gatherRows(x: Tensor, slots: Tensor, topK: number): Tensor;
  /** Per-expert GEMM: rows [offsets[e], offsets[e+1]) of x [N, Kin] times w[e] [Nout, Kin]ᵀ (+ bias[e] [Nout]) → [N, Nout]. */
  groupedLinear(x: Tensor, w: Tensor, offsets: Tensor, bias?: Tensor): Tensor;
  /**
   * The experts' first projection and their SwiGLU as one op: siluMul(groupedLinear(x, gateUp, offsets, bias),
   * clamped) → [N, F], gateUp [E, 2F, Kin] (F gate rows, then F up rows, as siluMul splits its input), bias [E, 2F].
   * The CPU composes those two ops. A backend may fuse them (CUDA does in its GEMV and tensor-core kernels): the
   * gate and up sums then enter the activation in f32 instead of being rounded to the dtype first, so bf16/f16
   * results differ from the two ops by about one rounding (within the conformance tolerance); f32 is unaffected.
   */
  groupedGluLinear(x: Tensor, gateUp: Tensor, offsets: Tensor, bias?: Tensor, clamped?: ClampedGlu): Tensor;
  /** out[t] = Σ over sorted rows n of token t: weights.flat[slots[n]] * y[n]; y [N, D], weights [T, K] → [T, D]. */
  scatterAddWeighted(y: Tensor, slots: Tensor, weights: Tensor, numTokens: number): Tensor;

  // ---- fill ------------------------------------------------------------------------------------------
  /**
   * A new tensor whose element i (row-major) is std · z_i rounded to `dtype`, z_i a standard normal from a
   * counter-based hash of (seed, i): the same values on every backend and whatever the shape (cpu/random.ts says
   * how). seed: an integer in [0, 2^53). For random weights made where they live (benchmarks of full-size models).
   */
  randomNormal(shape: Shape, dtype: FloatDType, seed: number, std: number): Tensor;
}
