// Prints moets' MoE-layer cells beside the peer's (scripts/peer_moe_layer.py), matched by (model, tokens): both times,
// both % of moets' floor, and the speed-up; then the geometric mean of the speed-ups (issue 3's target: ≥ 2×).
//   node --import tsx bench/compare.ts MOETS.json PEER.json
//
// Floors use moets' ceilings and experts hit for both, so % floor compares like with like.
import { readFileSync } from 'node:fs';
import { formatTable, type BenchFile, type Cell } from './moe-layer.ts';

const [moetsPath, peerPath] = process.argv.slice(2);
if (!moetsPath || !peerPath) {
  console.error('usage: node --import tsx bench/compare.ts MOETS.json PEER.json');
  process.exit(2);
}
const moets = JSON.parse(readFileSync(moetsPath, 'utf8')) as BenchFile;
const peer = JSON.parse(readFileSync(peerPath, 'utf8')) as BenchFile;
const key = (c: Cell) => `${c.model}@${c.tokens}`;
const peerCells = new Map(peer.cells.map((c) => [key(c), c]));
const paired = moets.cells.filter((c) => peerCells.has(key(c)));

console.log(`moets: copy ${moets.ceilings.copyGBs.toFixed(0)} GB/s, GEMM ${moets.ceilings.gemmTflops.toFixed(0)} TFLOP/s; ` +
  `${peer.tool}: copy ${peer.ceilings.copyGBs.toFixed(0)} GB/s, GEMM ${peer.ceilings.gemmTflops.toFixed(0)} TFLOP/s (${peer.device})`);
console.log(formatTable(paired, {
  header: [`${peer.tool} ms`, `${peer.tool} % floor`, 'speed-up'],
  row: (c) => {
    const p = peerCells.get(key(c))!;
    return [p.ms.toFixed(3), ((100 * c.floorMs) / p.ms).toFixed(1), `${(p.ms / c.ms).toFixed(2)}×`];
  },
}));
const logs = paired.map((c) => Math.log(peerCells.get(key(c))!.ms / c.ms));
const geo = Math.exp(logs.reduce((a, b) => a + b, 0) / Math.max(1, logs.length));
console.log(`geometric mean speed-up of moets over ${peer.tool} across ${paired.length} cells: ${geo.toFixed(2)}× (target ≥ 2×)`);
const missing = moets.cells.length - paired.length;
if (missing > 0) console.log(`${missing} moets cells have no ${peer.tool} cell`);
