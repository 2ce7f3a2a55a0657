"""Make the folder of the 13 held-out BSDS500-test images that model cards and notes use.

    python scripts/held_out.py /tmp/heldout            # then: rimkit eval --data /tmp/heldout ...

The images are those of ``train/BSDS500-test`` (under ``$RIMKIT_DATA``, else ``../shared/data``)
sorted by file name, every 16th from the first: 13 of the 200, never used to train a shipped
model (validation only). The folder gets symbolic links to them, nothing copied. Notes written
before session 31 speak of 12 held-out images, by an earlier choice no script recorded (see the
preamble of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rimkit.train.config import DataConfig, resolve_folder

SOURCE = "train/BSDS500-test"
EVERY = 16


def held_out_images(source: Path) -> list[Path]:
    """Every :data:`EVERY`-th image of ``source`` sorted by name, from the first."""
    from rimkit.data.images import list_images

    return list_images(source)[::EVERY]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to create (must not exist)")
    args = parser.parse_args()
    try:
        source = resolve_folder(DataConfig(), SOURCE)
    except ValueError as err:
        sys.exit(f"held_out.py: {err}")
    if not source.is_dir():
        sys.exit(f"held_out.py: {str(source)!r} does not exist; set RIMKIT_DATA to the data root")
    if args.out.exists():
        sys.exit(f"held_out.py: {str(args.out)!r} exists; give a new folder")
    images = held_out_images(source)
    args.out.mkdir(parents=True)
    for image in images:
        (args.out / image.name).symlink_to(image.resolve())
    print(f"{len(images)} images of {source} linked into {args.out}")


if __name__ == "__main__":
    main()
