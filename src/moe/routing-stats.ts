// Routing statistics: a RoutingObserver that sums, per MoE layer and per expert, every routing decision of a run
// (a generation, a batch, an evaluation), then reports them as a compact text table or as JSON.
//
// E = experts in the layer, K = experts per token (top-k), T = tokens the layer routed over the run,
// A = T·K routed slots ("assignments"), w_tj = weight of token t's j-th chosen expert as the layer applied it
// (after renormalisation and any routed scaling factor). Per layer:
//   tokens[e]        slots routed to expert e: a token sent to k experts counts once for each (Σ_e tokens[e] = A).
//   share[e]         tokens[e] / A, the expert's share of the load (Σ = 1).
//   maxOverMeanLoad  max_e tokens[e] / (A / E): 1 = perfectly even, E/K when every token goes to the same K experts.
//   loadCv           coefficient of variation σ/μ of tokens[e] over the E experts (population σ; 0 = even).
//   loadEntropy      entropy of the load distribution, −Σ_e share[e]·ln share[e], divided by ln E: in [0, 1],
//                    1 = every expert equally loaded, 0 = one expert takes everything.
//   weightEntropy    mean over tokens of the entropy of that token's K weights renormalised to sum to 1
//                    (p_tj = w_tj / Σ_j w_tj), divided by ln K: 1 = the K chosen experts weigh equally,
//                    near 0 = one of them dominates.
//   weightMass[e]    Σ of the weights w_tj of the slots routed to e; meanWeight[e] = weightMass[e] / tokens[e].
//   coOccurrence     [E][E] symmetric: [a][b] (a ≠ b) = tokens whose chosen experts include both a and b;
//                    [a][a] = tokens that chose a. It is MᵀM for the [T, E] 0/1 matrix M of chosen experts.
// A ratio with nothing to divide by (no tokens yet, E = 1, K = 1, an expert never chosen) is null.
import { assert } from '../core/errors.ts';
import type { ArchitectureSpec } from '../models/spec.ts';
import type { RoutingDecision, RoutingObserver } from './observer.ts';

/** What the statistics need to know of a sparse layer before any token reaches it. */
export interface MoeLayerInfo {
  /** Index of the decoder layer (as in RoutingDecision.layer). */
  layer: number;
  numExperts: number;
  topK: number;
}

/** One layer's statistics (definitions in the file header); per-expert fields are arrays indexed by expert. */
export interface LayerRoutingStats extends MoeLayerInfo {
  /** Tokens the layer routed (T). */
  tokens: number;
  /** Routed slots, T·K. */
  assignments: number;
  maxOverMeanLoad: number | null;
  loadCv: number | null;
  loadEntropy: number | null;
  weightEntropy: number | null;
  /** Experts no token was sent to. */
  unusedExperts: number;
  experts: {
    tokens: number[];
    share: (number | null)[];
    weightMass: number[];
    meanWeight: (number | null)[];
  };
  coOccurrence: number[][];
}

export interface RoutingStatsReport {
  layers: LayerRoutingStats[];
}

/** The sparse layers of a decoder spec, with their expert counts and top-k. */
export function moeLayersOf(spec: ArchitectureSpec): MoeLayerInfo[] {
  return spec.layers.flatMap((l, layer) => (l.ffn.kind === 'moe' ? [{ layer, numExperts: l.ffn.numExperts, topK: l.ffn.router.topK }] : []));
}

/** Running sums for one layer. tokens/weightMass: [E]; coOccurrence: [E, E] row-major. */
class LayerAccumulator {
  tokens = 0;
  readonly expertTokens: Float64Array;
  readonly weightMass: Float64Array;
  readonly coOccurrence: Float64Array;
  /** Σ over tokens of the normalised per-token weight entropy. */
  private weightEntropySum = 0;

  constructor(readonly info: MoeLayerInfo) {
    const E = info.numExperts;
    this.expertTokens = new Float64Array(E);
    this.weightMass = new Float64Array(E);
    this.coOccurrence = new Float64Array(E * E);
  }

  add(d: RoutingDecision): void {
    const { numExperts: E, topK: K } = this.info;
    const T = d.positions.length;
    assert(d.topK === K, `layer ${d.layer} reported top-${d.topK} routing, its spec says top-${K}`);
    assert(d.experts.length === T * K && d.weights.length === T * K,
      `layer ${d.layer}: ${d.experts.length} experts and ${d.weights.length} weights for ${T} tokens × top-${K}`);
    const logK = Math.log(K);
    for (let t = 0; t < T; t++) {
      let weightSum = 0;
      for (let j = t * K; j < (t + 1) * K; j++) {
        const e = d.experts[j]!;
        assert(e >= 0 && e < E, `layer ${d.layer} routed a token to expert ${e}, outside 0..${E - 1}`);
        this.expertTokens[e]! += 1;
        this.weightMass[e]! += d.weights[j]!;
        weightSum += d.weights[j]!;
        if (!chosenEarlier(d.experts, t * K, j)) this.countPairs(d.experts, t * K, j);
      }
      if (K > 1) this.weightEntropySum += entropy(d.weights.subarray(t * K, (t + 1) * K), weightSum) / logK;
    }
    this.tokens += T;
  }

  /** Token t chose expert experts[j]: count it on the diagonal and with each distinct expert chosen before it. */
  private countPairs(experts: Int32Array, first: number, j: number): void {
    const E = this.info.numExperts;
    const a = experts[j]!;
    this.coOccurrence[a * E + a]! += 1;
    for (let i = first; i < j; i++) {
      const b = experts[i]!;
      if (b === a || chosenEarlier(experts, first, i)) continue;
      this.coOccurrence[a * E + b]! += 1;
      this.coOccurrence[b * E + a]! += 1;
    }
  }

  summary(): LayerRoutingStats {
    const { numExperts: E, topK: K } = this.info;
    const tokens = Array.from(this.expertTokens);
    const assignments = tokens.reduce((s, c) => s + c, 0);
    const mean = assignments / E;
    const variance = tokens.reduce((s, c) => s + (c - mean) ** 2, 0) / E;
    const some = assignments > 0;
    return {
      ...this.info,
      tokens: this.tokens,
      assignments,
      maxOverMeanLoad: some ? Math.max(...tokens) / mean : null,
      loadCv: some ? Math.sqrt(variance) / mean : null,
      loadEntropy: some && E > 1 ? entropy(this.expertTokens, assignments) / Math.log(E) : null,
      weightEntropy: this.tokens > 0 && K > 1 ? this.weightEntropySum / this.tokens : null,
      unusedExperts: tokens.filter((c) => c === 0).length,
      experts: {
        tokens,
        share: tokens.map((c) => (some ? c / assignments : null)),
        weightMass: Array.from(this.weightMass),
        meanWeight: tokens.map((c, e) => (c > 0 ? this.weightMass[e]! / c : null)),
      },
      coOccurrence: Array.from({ length: E }, (_, a) => Array.from(this.coOccurrence.subarray(a * E, (a + 1) * E))),
    };
  }
}

/** Whether experts[j] already appears in experts[first..j) (the same token chose it twice). */
function chosenEarlier(experts: Int32Array, first: number, j: number): boolean {
  for (let i = first; i < j; i++) if (experts[i] === experts[j]) return true;
  return false;
}

/** −Σ p ln p over p = values / total (values ≤ 0 contribute nothing), in nats. */
function entropy(values: ArrayLike<number>, total: number): number {
  let h = 0;
  for (let i = 0; i < values.length; i++) {
    const p = values[i]! / total;
    if (p > 0) h -= p * Math.log(p);
  }
  return h;
}

/**
 * Attach with `model.setRoutingObserver(stats)`. Every sparse layer is declared up front (so an expert never
 * chosen still appears with zero load); a decision from an undeclared layer is a bug in the caller.
 */
export class RoutingStats implements RoutingObserver {
  private readonly byLayer = new Map<number, LayerAccumulator>();

  constructor(layers: readonly MoeLayerInfo[]) {
    for (const info of layers) {
      assert(Number.isInteger(info.numExperts) && info.numExperts >= 1 && Number.isInteger(info.topK) && info.topK >= 1,
        `layer ${info.layer}: ${info.numExperts} experts, top-${info.topK}`);
      assert(!this.byLayer.has(info.layer), `layer ${info.layer} declared twice`);
      this.byLayer.set(info.layer, new LayerAccumulator({ ...info }));
    }
  }

  /** Statistics for the sparse layers of a decoder (see moeLayersOf). */
  static forSpec(spec: ArchitectureSpec): RoutingStats {
    return new RoutingStats(moeLayersOf(spec));
  }

  onRouting(decision: RoutingDecision): void {
    const layer = this.byLayer.get(decision.layer);
    assert(layer !== undefined, `routing from layer ${decision.layer}, which was not declared as a MoE layer`);
    layer.add(decision);
  }

  report(): RoutingStatsReport {
    return { layers: [...this.byLayer.values()].sort((a, b) => a.info.layer - b.info.layer).map((l) => l.summary()) };
  }
}

/**
 * The report as JSON, after `run` (what was run: model, token counts …), indented, with each array of numbers
 * (a matrix row, a per-expert field) on one line.
 */
export function routingStatsJson(report: RoutingStatsReport, run: Record<string, string | number> = {}): string {
  const text = JSON.stringify({ ...run, ...report }, null, 2);
  return `${text.replace(/\[\s+([^[\]{}]*?)\s+\]/g, (_, items: string) => `[${items.split(/,\s+/).join(', ')}]`)}\n`;
}

/** Table columns: header, cell, and whether the cell is text (left-aligned) rather than a number. */
const TABLE_COLUMNS: { header: string; cell: (l: LayerRoutingStats) => string; text?: true }[] = [
  { header: 'layer', cell: (l) => String(l.layer) },
  { header: 'experts', cell: (l) => String(l.numExperts) },
  { header: 'top-k', cell: (l) => String(l.topK) },
  { header: 'tokens', cell: (l) => String(l.tokens) },
  { header: 'max/mean', cell: (l) => fixed(l.maxOverMeanLoad, 2) },
  { header: 'CV', cell: (l) => fixed(l.loadCv, 2) },
  { header: 'load H', cell: (l) => fixed(l.loadEntropy, 3) },
  { header: 'weight H', cell: (l) => fixed(l.weightEntropy, 3) },
  { header: 'unused', cell: (l) => String(l.unusedExperts) },
  { header: 'busiest', cell: busiestExpert, text: true },
  { header: 'top pair', cell: topPair, text: true },
];

/** One row per sparse layer, columns aligned, then a legend. */
export function formatRoutingStatsTable(report: RoutingStatsReport): string {
  if (report.layers.length === 0) return 'routing statistics: the model has no MoE layers\n';
  const rows = [TABLE_COLUMNS.map((c) => c.header), ...report.layers.map((l) => TABLE_COLUMNS.map((c) => c.cell(l)))];
  const widths = TABLE_COLUMNS.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const align = (cell: string, c: number) => (TABLE_COLUMNS[c]!.text ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!));
  const lines = rows.map((r) => r.map(align).join('  ').trimEnd());
  return [
    `routing statistics (${report.layers.length} MoE layer${report.layers.length === 1 ? '' : 's'})`,
    ...lines,
    'max/mean: busiest expert\'s load over the mean load; CV: std/mean of the loads; load H: entropy of the load shares / ln E',
    '(1 = even); weight H: mean per-token entropy of the top-k weights / ln k; busiest: expert and its share of the load;',
    'top pair: the two experts most often chosen together and the share of tokens that chose both.',
  ].join('\n') + '\n';
}

function fixed(value: number | null, digits: number): string {
  return value === null ? '-' : value.toFixed(digits);
}

function percent(fraction: number): string {
  return `${(100 * fraction).toFixed(1)}%`;
}

function busiestExpert(l: LayerRoutingStats): string {
  if (l.assignments === 0) return '-';
  const counts = l.experts.tokens;
  const e = counts.indexOf(Math.max(...counts));
  return `e${e} ${percent(counts[e]! / l.assignments)}`;
}

function topPair(l: LayerRoutingStats): string {
  let best: [number, number, number] | undefined;
  l.coOccurrence.forEach((row, a) => row.forEach((n, b) => {
    if (b > a && n > 0 && (best === undefined || n > best[2])) best = [a, b, n];
  }));
  return best === undefined ? '-' : `e${best[0]}+e${best[1]} ${percent(best[2] / l.tokens)}`;
}
