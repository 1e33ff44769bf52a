#!/usr/bin/env bash
# Fits a GPU-machine run into the device tool's 64 MiB (tracked tree + .device): `leave-out DIR…` stops tracking
# the named folders under test/fixtures for the run (index only; files stay on disk, ignored through
# .git/info/exclude), `restore` tracks them again and checks the index is back to what it was.
#   bash scripts/device-tree.sh leave-out gpt_oss-fused mixtral-hub     # then run on the device
#   bash scripts/device-tree.sh restore
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude=.git/info/exclude
case "${1:-}" in
  leave-out)
    shift
    [ $# -gt 0 ] || { echo "name the test/fixtures folders to leave out" >&2; exit 2; }
    for dir in "$@"; do
      [ -d "test/fixtures/$dir" ] || { echo "no test/fixtures/$dir" >&2; exit 2; }
      git rm -r --cached -q "test/fixtures/$dir"
      echo "/test/fixtures/$dir/" >> "$exclude"
    done
    echo "tree: $(git ls-files -co --exclude-standard -z | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1) MiB + .device $(du -sm .device 2>/dev/null | cut -f1) MiB"
    ;;
  restore)
    sed -i '\#^/test/fixtures/.*/$#d' "$exclude"
    git add test/fixtures
    git diff --cached --quiet -- test/fixtures || { echo "test/fixtures differs from HEAD after restore: check git status" >&2; exit 1; }
    echo "restored: $(git ls-files test/fixtures | wc -l) fixture files tracked"
    ;;
  *) echo "usage: device-tree.sh leave-out DIR… | restore" >&2; exit 2 ;;
esac
