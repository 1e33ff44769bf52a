// `node --import tsx bench/decode.ts [flags]` is `moets bench decode [flags]` (src/cli/bench.ts runs
// src/bench/decode.ts): e.g. --models Mixtral-8x7B --batch 1 --steps 64 --json FILE.
process.argv.splice(2, 0, 'bench', 'decode');
await import('../src/cli/main.ts');
