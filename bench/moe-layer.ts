// `node --import tsx bench/moe-layer.ts [flags]` is `moets bench moe-layer [flags]` (src/cli/bench.ts runs
// src/bench/moe-layer.ts): e.g. --quick, --models Mixtral-8x7B,DeepSeek-V3, --tokens 1,4096, --json FILE.
process.argv.splice(2, 0, 'bench', 'moe-layer');
await import('../src/cli/main.ts');
