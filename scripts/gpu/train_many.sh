#!/usr/bin/env bash
# Train up to three recipes at once on the GPU machine, in bf16, each under the same time limit,
# and bring each back in two files of < 16 MiB: NAME.tar (the last weights, config.yaml, log.csv,
# the console) and NAME.last.optim.safetensors (both Adam moments in bf16). The paper's cells are
# small for one GPU; how much speed each run keeps beside the others is not measured yet (each
# run's log.csv has its throughput), so give the recipes iterations they can finish or resume.
#   bash scripts/gpu/train_many.sh SECONDS configs/3task-paper.yaml configs/gdn-3task-paper.yaml ...
# Needs gpu-data/ (scripts/gpu/prepare.sh) carried along. A run whose gpu-resume/NAME/ is carried
# (scripts/gpu/unpack.sh FILES_FOLDER of an earlier call's files) continues instead of starting.
# At the time limit timeout(1) sends SIGTERM: rimkit train saves the iteration under way and stops
# (killed 60 s later if it has not); a recipe whose model is no RIM trains in fp32.
set -uo pipefail
seconds="$1"; shift
if (( $# < 1 || $# > 3 )); then
  echo "give 1 to 3 configs: each brings back two files and a device call returns at most 8"
  exit 2
fi
out="${OUT:-/tmp/out}"; mkdir -p "$out"
export RIMKIT_DATA="$PWD/gpu-data" PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, numpy, PIL, yaml, safetensors, tqdm, scipy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 3
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
names=()
for config in "$@"; do
  name="$(basename "$config" .yaml)"; names+=("$name")
  if [ -d "gpu-resume/$name" ]; then
    python3 scripts/checkpoint_pieces.py join "gpu-resume/$name" "runs/gpu-$name" >/dev/null || exit 4
  fi
done
mkdir -p runs
# the runs share the machine's CPU cores (patch sampling, the optimizer's bookkeeping)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / $# > 0 ? $(nproc) / $# : 1 ))}"
for config in "$@"; do
  name="$(basename "$config" .yaml)"; run="runs/gpu-$name"
  if [ -d "gpu-resume/$name" ]; then
    timeout -k 60 "$seconds" python3 -m rimkit train --resume "$run" -q >"$run.console" 2>&1 &
  else
    timeout -k 60 "$seconds" python3 -m rimkit train "$config" --out "$run" --force -q \
      --set optim.device="${DEVICE:-cuda}" --set optim.precision="${PRECISION:-bf16}" \
      >"$run.console" 2>&1 &
  fi
done
wait
echo "all runs ended after ${SECONDS}s"
for name in "${names[@]}"; do
  run="runs/gpu-$name"; pieces="runs/pieces-$name"
  rm -rf "$pieces"
  if ! python3 scripts/checkpoint_pieces.py split "$run" "$pieces" --compact >/dev/null; then
    echo "== $name: no checkpoint to bring back; its console:"; tail -n 5 "$run.console"; continue
  fi
  cp "$run.console" "$pieces/console.txt"
  mv "$pieces/last.optim.safetensors" "$out/$name.last.optim.safetensors"
  tar -cf "$out/$name.tar" -C "$pieces" .
  echo "== $name: $(tail -n 1 "$run/log.csv" | cut -c1-160)"
  tail -n 2 "$run.console"
done
ls -l "$out"
