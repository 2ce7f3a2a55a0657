#!/usr/bin/env bash
# Unpack what scripts/gpu/train_many.sh brought back (FOLDER holds NAME.tar and
# NAME.last.optim.safetensors) into gpu-resume/NAME/, which a later train_many.sh call continues
# when gpu-resume is carried, and into runs/gpu-NAME/, a run folder for `rimkit train --resume`,
# rimkit eval or scripts/ship_model.py here.
#   bash scripts/gpu/unpack.sh FOLDER
set -euo pipefail
folder="$1"; python="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
shopt -s nullglob
tars=("$folder"/*.tar)
(( ${#tars[@]} )) || { echo "no NAME.tar in $folder"; exit 2; }
for tar in "${tars[@]}"; do
  name="$(basename "$tar" .tar)"; pieces="gpu-resume/$name"
  rm -rf "$pieces"; mkdir -p "$pieces"
  tar -xf "$tar" -C "$pieces"
  cp "$folder/$name.last.optim.safetensors" "$pieces/last.optim.safetensors"
  "$python" scripts/checkpoint_pieces.py join "$pieces" "runs/gpu-$name"
done
