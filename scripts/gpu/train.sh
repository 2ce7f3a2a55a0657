#!/usr/bin/env bash
# Train one recipe on the GPU machine in bf16 and bring the run back in pieces of < 16 MiB.
#   bash scripts/gpu/train.sh configs/denoise-gray-paper.yaml [SECONDS] [--set KEY=VALUE ...]
# Needs gpu-data/ (scripts/gpu/prepare.sh) carried along. With gpu-resume/ carried (pieces from
# an earlier run: scripts/checkpoint_pieces.py join), the run continues instead. Writes to $OUT:
# last/best weights, each Adam moment, config.yaml, log.csv (join them back with
# `python scripts/checkpoint_pieces.py join PIECES runs/NAME`, then `rimkit train --resume`).
# At the time limit timeout(1) sends SIGTERM: rimkit train saves the iteration under way and stops
# (killed 60 s later if it has not); a recipe whose model is no RIM trains in fp32.
set -uo pipefail
config="$1"; seconds="${2:-480}"; shift 2 || shift $#
out="${OUT:-/tmp/out}"; run="runs/gpu-$(basename "$config" .yaml)"
export RIMKIT_DATA="$PWD/gpu-data" PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, numpy, PIL, yaml, safetensors, tqdm, scipy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 3
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
if [ -d gpu-resume ]; then
  python3 scripts/checkpoint_pieces.py join gpu-resume "$run" || exit 4
  timeout -k 60 "$seconds" python3 -m rimkit train --resume "$run" -q "$@"
else
  timeout -k 60 "$seconds" python3 -m rimkit train "$config" --out "$run" --force -q \
    --set optim.device="${DEVICE:-cuda}" --set optim.precision="${PRECISION:-bf16}" "$@"
fi
echo "train exit $? after ${SECONDS}s"
python3 scripts/checkpoint_pieces.py split "$run" "$out"
tail -n 3 "$run/log.csv" | cut -c1-200
