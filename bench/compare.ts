// Prints moets' benchmark cells beside a peer's (scripts/peer_moe_layer.py or scripts/peer_decode.py), matched by
// (model, tokens) for the MoE layer and (model, batch) for decode: both times, both as % of moets' floor, and the
// speed-up of moets; for the MoE layer also the geometric mean of the speed-ups (issue 3's target: ≥ 2×), on the
// op-by-op time and, over the cells that have one, on the time replayed as a CUDA graph (what decode gets).
//   node --import tsx bench/compare.ts MOETS.json PEER.json
//
// Floors are moets' (its ceilings and the experts its routing chose) for both tools, so % floor compares like with like.
import { readFileSync } from 'node:fs';
import { formatDecodeTable, type DecodeBenchFile, type DecodeCell } from '../src/bench/decode.ts';
import { formatMoeTable, geometricMean, type BenchFile, type Cell } from '../src/bench/moe-layer.ts';

const [moetsPath, peerPath] = process.argv.slice(2);
if (!moetsPath || !peerPath) {
  console.error('usage: node --import tsx bench/compare.ts MOETS.json PEER.json');
  process.exit(2);
}
const moets = JSON.parse(readFileSync(moetsPath, 'utf8')) as BenchFile | DecodeBenchFile;
const peer = JSON.parse(readFileSync(peerPath, 'utf8')) as BenchFile | DecodeBenchFile;
if ((moets.kind ?? 'moe-layer') !== (peer.kind ?? 'moe-layer')) {
  console.error(`${moetsPath} holds ${moets.kind ?? 'moe-layer'} cells but ${peerPath} holds ${peer.kind ?? 'moe-layer'} cells; compare files of one benchmark`);
  process.exit(2);
}
console.log(`moets: copy ${moets.ceilings.copyGBs.toFixed(0)} GB/s${'gemmTflops' in moets.ceilings ? `, GEMM ${moets.ceilings.gemmTflops.toFixed(0)} TFLOP/s` : ''}; ` +
  `${peer.tool}: copy ${peer.ceilings.copyGBs.toFixed(0)} GB/s${'gemmTflops' in peer.ceilings ? `, GEMM ${peer.ceilings.gemmTflops.toFixed(0)} TFLOP/s` : ''} (${peer.device})`);
if (moets.kind === 'decode') compareDecode(moets, peer as DecodeBenchFile);
else compareMoeLayer(moets, peer as BenchFile);

function compareMoeLayer(ours: BenchFile, theirs: BenchFile): void {
  const key = (c: Cell) => `${c.model}@${c.tokens}`;
  const peerCells = new Map(theirs.cells.map((c) => [key(c), c]));
  const paired = ours.cells.filter((c) => peerCells.has(key(c)));
  const peerMs = (c: Cell) => peerCells.get(key(c))!.ms;
  console.log(`ms, % floor: moets op by op (each kernel launched from the host, as prefill runs); graph ms, graph %: the same ` +
    `layer captured once as a CUDA graph and replayed (as decode runs); speed-up = ${theirs.tool} ms ÷ moets ms (op by op)`);
  console.log(formatMoeTable(paired, {
    header: [`${theirs.tool} ms`, `${theirs.tool} % floor`, 'speed-up'],
    row: (c) => [peerMs(c).toFixed(3), ((100 * c.floorMs) / peerMs(c)).toFixed(1), `${(peerMs(c) / c.ms).toFixed(2)}×`],
  }));
  const opByOp = geometricMean(paired.map((c) => peerMs(c) / c.ms));
  console.log(`geometric mean speed-up of moets over ${theirs.tool} across ${paired.length} cells: ${opByOp.toFixed(2)}× op by op (target ≥ 2×)`);
  const graphed = paired.filter((c) => c.graphMs !== undefined);
  if (graphed.length > 0) {
    const replayed = geometricMean(graphed.map((c) => peerMs(c) / c.graphMs!));
    console.log(`geometric mean speed-up with moets replayed as CUDA graphs, across ${graphed.length} cells: ${replayed.toFixed(2)}×`);
  }
  reportUnpaired(ours.cells.length - paired.length, theirs.tool);
}

function compareDecode(ours: DecodeBenchFile, theirs: DecodeBenchFile): void {
  const key = (c: DecodeCell) => `${c.model}@${c.batch}`;
  const peerCells = new Map(theirs.cells.map((c) => [key(c), c]));
  const paired = ours.cells.filter((c) => peerCells.has(key(c)));
  console.log(formatDecodeTable(paired, {
    header: [`${theirs.tool} ms/step`, `${theirs.tool} tok/s`, `${theirs.tool} % floor`, 'speed-up'],
    row: (c) => {
      const p = peerCells.get(key(c))!;
      return [p.msPerStep.toFixed(2), p.tokensPerSecond.toFixed(1), ((100 * c.floorMs) / p.msPerStep).toFixed(1), `${(p.msPerStep / c.msPerStep).toFixed(2)}×`];
    },
  }));
  reportUnpaired(ours.cells.length - paired.length, theirs.tool);
}

function reportUnpaired(missing: number, tool: string): void {
  if (missing > 0) console.log(`${missing} moets cells have no ${tool} cell`);
}
