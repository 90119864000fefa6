#!/usr/bin/env bash
# The GPU check on the GPU machine (no network, no registry): install the carried wheels, point the tests at
# the carried goldens, run benchmarks/gpu_check.py into $OUT. From the checkout root:
#     bash benchmarks/gpu_check.sh [gpu_check.py options, e.g. --budget 400]
# Needs, git-ignored in the checkout: .whl/ (diffusers, open_clip_torch, ftfy, wcwidth, omegaconf wheels; README
# "GPU check" lists how they were fetched) and .golden/ (a copy of ../shared/golden_small).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
for needed in .whl .golden/README.md; do
  [ -e "$needed" ] || { echo "gpu_check.sh: $needed is missing in $PWD (see README, GPU check)" >&2; exit 2; }
done
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export AIGC_REWARD_GOLDEN_DIR="$PWD/.golden" AIGC_REWARD_REQUIRE_GOLDEN=1
exec python3 benchmarks/gpu_check.py --out "$OUT" "$@"
