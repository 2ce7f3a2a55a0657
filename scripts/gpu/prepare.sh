#!/usr/bin/env bash
# Copy the training images a GPU run needs into gpu-data/ (ignored by git, ~30 MB), so the
# device tool can carry them: run here, then on the device `bash scripts/gpu/train.sh CONFIG`
# with carry=["gpu-data"] (and carry=["gpu-data", "gpu-resume"] to continue a run).
#   bash scripts/gpu/prepare.sh [DATA_ROOT]      # DATA_ROOT defaults to ../shared/data
set -euo pipefail
root="${1:-../shared/data}"
mkdir -p gpu-data/train .git/info
for set in BSDS300-train BSDS500-test; do
  rm -rf "gpu-data/train/$set"
  cp -r "$root/train/$set" "gpu-data/train/$set"
done
grep -qx "/gpu-data/" .git/info/exclude 2>/dev/null || echo "/gpu-data/" >> .git/info/exclude
grep -qx "/gpu-resume/" .git/info/exclude 2>/dev/null || echo "/gpu-resume/" >> .git/info/exclude
du -sh gpu-data
