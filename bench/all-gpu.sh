#!/usr/bin/env bash
# Every GPU benchmark of the CUDA backend in one command, on a machine with an NVIDIA GPU, Node and (for the peers)
# PyTorch + transformers: moets' MoE-layer and decode benches, the PyTorch peers on the same shapes in the same run
# (scripts/peer_moe_layer.py: torch._grouped_mm; scripts/peer_decode.py: transformers' generate), and the
# side-by-side tables. JSON, logs and tables go to DIR (default bench/out).
#   bash bench/all-gpu.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/out}
mkdir -p "$out"
./bin/moets.js bench moe-layer --device cuda --json "$out/moe-layer-moets.json" > "$out/moe-layer-moets.txt" 2>&1
python3 scripts/peer_moe_layer.py --json "$out/moe-layer-torch.json" > "$out/moe-layer-torch.txt" 2>&1
./bin/moets.js bench decode --device cuda --json "$out/decode-moets.json" > "$out/decode-moets.txt" 2>&1
python3 scripts/peer_decode.py --json "$out/decode-torch.json" > "$out/decode-torch.txt" 2>&1
node --import tsx bench/compare.ts "$out/moe-layer-moets.json" "$out/moe-layer-torch.json" | tee "$out/moe-layer-compare.txt"
node --import tsx bench/compare.ts "$out/decode-moets.json" "$out/decode-torch.json" | tee "$out/decode-compare.txt"
