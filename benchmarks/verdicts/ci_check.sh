#!/usr/bin/env bash
# The CI workflow's A/B steps, here: against the previous commit, once as they are and once with
# numpy_manual made 15 % slower in this checkout only (sitecustomize.py beside this file, which every
# process of both environments imports, and which slows only the module under this checkout).
#
#   bash benchmarks/verdicts/ci_check.sh [BASE]      (BASE: the previous commit by default)
#
# Right: the first comparison exits 0, the second exits 1 naming numpy_manual and not torch_manual.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
base=${1:-HEAD~1}
export AB_WORK=${AB_WORK:-$(mktemp -d)} AB_FORMAT=terminal AB_FAIL_ON=median:5%
mkdir -p "$AB_WORK"
here="$root/benchmarks/verdicts"

start=$(date +%s)
# Both calls start every process alike (the plug-in on the path, the same variables); 0.00 slows nothing.
PYTHONPATH="$here" SIDEBYSIDE_SLOWDOWN=numpy_manual:0.00 SIDEBYSIDE_SLOWDOWN_IN="$root" \
    bash "$root/.ci/ab-compare" "$base" "$AB_WORK/plain" > "$AB_WORK/plain.txt" 2> "$AB_WORK/plain.err"
plain=$?
set_up=$(( $(date +%s) - start ))
start=$(date +%s)
PYTHONPATH="$here" SIDEBYSIDE_SLOWDOWN=numpy_manual:0.15 SIDEBYSIDE_SLOWDOWN_IN="$root" \
    bash "$root/.ci/ab-compare" "$base" "$AB_WORK/slowed" > "$AB_WORK/slowed.txt" 2> "$AB_WORK/slowed.err"
slowed=$?
again=$(( $(date +%s) - start ))

echo "base $(git -C "$root" rev-parse --short "$base"), head $(git -C "$root" rev-parse --short HEAD); work in $AB_WORK"
echo "as it is (set-up and run, ${set_up} s): exit $plain"
cat "$AB_WORK/plain.txt"; grep '^compare: ' "$AB_WORK/plain.err"
echo "numpy_manual 15 % slower in head (environments reused, ${again} s): exit $slowed"
cat "$AB_WORK/slowed.txt"; grep '^compare: ' "$AB_WORK/slowed.err"
if [ "$plain" = 0 ] && [ "$slowed" = 1 ] && grep -q '^compare: numpy_manual ' "$AB_WORK/slowed.err" \
        && ! grep -q '^compare: torch_manual ' "$AB_WORK/slowed.err"; then
    echo "right: passes as it is, fails on the injected slowdown, naming numpy_manual only"
else
    echo "WRONG"; tail -n 5 "$AB_WORK/plain.err" "$AB_WORK/slowed.err"; exit 1
fi
