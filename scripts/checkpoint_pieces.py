"""Cut a run's checkpoints into one file per part (weights, each Adam moment), or join them.

For moving a run between machines that limit the size of each file (e.g. 16 MiB): the paper
cell's checkpoint with Adam moments is about 28 MB, each piece about 9.4 MB.

    python scripts/checkpoint_pieces.py split runs/denoise-gray-paper "$OUT"   # last and best
    python scripts/checkpoint_pieces.py join pieces/ runs/denoise-gray-paper   # then --resume

``split --compact`` writes the last checkpoint alone, with both Adam moments in one bfloat16
piece (two files of about 9.4 MB for that model instead of six), for bringing back several runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from rimkit.train.checkpoint import join_checkpoint, split_checkpoint

STEMS = ("last", "best")
RUN_FILES = ("config.yaml", "log.csv")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["split", "join"])
    p.add_argument("source", type=Path, help="split: a run folder; join: the pieces' folder")
    p.add_argument("target", type=Path, help="split: the pieces' folder; join: a run folder")
    p.add_argument(
        "--compact", action="store_true", help="split: the last checkpoint only, moments in bf16"
    )
    args = p.parse_args(argv)
    stems, moments = (STEMS[:1], torch.bfloat16) if args.compact else (STEMS, None)
    try:
        args.target.mkdir(parents=True, exist_ok=True)
        for stem in stems:
            if args.action == "split" and (args.source / f"{stem}.safetensors").is_file():
                for path in split_checkpoint(
                    args.source / stem, args.target, moments_dtype=moments
                ):
                    print(path)
            elif args.action == "join" and (args.source / f"{stem}.model.safetensors").is_file():
                join_checkpoint(args.source, stem, args.target / stem)
                print(args.target / f"{stem}.safetensors")
        for name in RUN_FILES:
            if (args.source / name).is_file():
                shutil.copyfile(args.source / name, args.target / name)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
