#!/usr/bin/env bash
# Packs what a GPU-machine run needs into .device/ (git-ignored) within the device tool's 64 MiB: runs
# ../shared/device/prepare.sh (Node binary + on-device.sh), then replaces its node_modules archive with a slim one
# holding only what the CUDA tests, benches and the CLI load (tsx, esbuild for linux-x64, koffi's linux-x64 binary,
# commander, @huggingface/tokenizers and jinja). Then: device run with carry [".device"], command `source .device/on-device.sh && …`.
# The tree plus .device must stay under 64 MiB: with test/fixtures and assets/ tracked it is over, so leave the
# fixtures a run does not need out of that run: scripts/device-tree.sh leave-out DIR…, then restore.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
bash ../shared/device/prepare.sh >/dev/null
tar -C . -cf - \
  --exclude='koffi/build/koffi/darwin_*' --exclude='koffi/build/koffi/win32_*' --exclude='koffi/build/koffi/freebsd_*' \
  --exclude='koffi/build/koffi/openbsd_*' --exclude='koffi/build/koffi/musl_*' --exclude='koffi/build/koffi/linux_arm*' \
  --exclude='koffi/build/koffi/linux_ia32' --exclude='koffi/build/koffi/linux_loong64' --exclude='koffi/build/koffi/linux_riscv64d' \
  node_modules/tsx node_modules/esbuild node_modules/@esbuild/linux-x64 \
  node_modules/koffi node_modules/commander node_modules/@huggingface/tokenizers node_modules/@huggingface/jinja | xz -T0 -6 > .device/node_modules.tar.xz
tree=$(git ls-files -co --exclude-standard -z | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo ".device: $(du -sm .device | cut -f1) MiB; tree: ${tree} MiB (the device tool carries 64 MiB in all)"
