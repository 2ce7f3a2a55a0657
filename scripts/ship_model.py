"""Ship a trained run as a zoo model: weights, a JSON card and a Markdown card.

    python scripts/ship_model.py runs/denoise-gray-cpu denoise-gray --task denoise \\
        --hardware "CPU (2 cores)" --recipe configs/denoise-gray-cpu.yaml \\
        --score "BSD68 sigma 25 PSNR=28.10 dB" --score-command "python benchmarks/..."
    python scripts/ship_model.py runs/mine my-denoiser --task denoise --hardware CPU \\
        --recipe my.yaml --out my-models   # then: --model my-models/my-denoiser.safetensors

Takes the run's ``best`` checkpoint (``--checkpoint last``, or a run without a best: its
``last``), stores its weights alone (float32, with the training config in the metadata) as
``NAME.safetensors`` in ``--out`` (default: the package's ``src/rimkit/zoo/weights``, where
``rimkit models`` and ``rimkit.zoo`` find them) and writes the cards ``NAME.json`` and
``NAME.md`` beside it. A model of that name there is replaced only with ``--force``. Scores are
only what you pass with ``--score KEY=VALUE`` (split at the first ``=``: the key holds none):
numbers measured by a benchmark command, given with ``--score-command``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import yaml

from rimkit.evaluate.report import atomic_write_text
from rimkit.models import RIMConfig, count_parameters
from rimkit.models.cost import BSD68_SIZE, inference_flops
from rimkit.tasks import TASKS
from rimkit.train.checkpoint import export_weights, load_checkpoint, read_meta
from rimkit.zoo import WEIGHTS_DIR


def _wall_time(run: Path, patches_per_iteration: int, upto: int | None = None) -> float:
    """Seconds spent in training iterations (validation excluded) up to iteration ``upto``
    (default: all), summed from ``log.csv``.

    Summing per-iteration times, rather than first-to-last file times, keeps the pauses between
    resumed sessions out; an iteration logged twice (a resume repeats it) counts once.
    """
    seconds: dict[int, float] = {}
    with open(run / "log.csv", newline="") as log:
        for row in csv.DictReader(log):
            it = int(row["iteration"])
            if not row["patches_per_s"]:
                continue  # a fine-tune's validation of its start (iteration 0)
            if upto is None or it <= upto:
                seconds[it] = patches_per_iteration / float(row["patches_per_s"])
    return sum(seconds.values())


def _run_of(init: str) -> Path | None:
    """The run folder an ``optim.init`` came from (a run folder, or a file inside one)."""
    path = Path(init)
    folder = path if path.is_dir() else path.parent
    return folder if (folder / "log.csv").is_file() and (folder / "config.yaml").is_file() else None


def _checkpoint_of(init: str, run: Path) -> Path:
    """The checkpoint stem an ``optim.init`` inside ``run`` loaded: the file it names (e.g.
    ``best``), else the folder's final ``model`` or, for an unfinished run, ``last``."""
    path = Path(init)
    if path.is_file():
        return path.with_suffix("")
    return run / "model" if (run / "model.safetensors").is_file() else run / "last"


def _sources_text(data: dict) -> str:
    """The card's data line: the training source(s) and gray or RGB."""
    train = data["train"]
    sources = train if isinstance(train, str) else " + ".join(train)
    return f"{sources} ({'gray' if data['gray'] else 'RGB'})"


def _lineage(config: dict) -> list[dict]:
    """The runs a fine-tuned run started from, nearest first: each one's init, the iterations
    of the checkpoint it started from, batch and wall time up to that checkpoint (a shipped
    model's name as init ends the chain with what is known)."""
    chain: list[dict] = []
    init = config["optim"].get("init")
    while init and len(chain) < 10:
        run = _run_of(init)
        if run is None:
            chain.append({"init": init})
            break
        parent = yaml.safe_load((run / "config.yaml").read_text())
        started = read_meta(_checkpoint_of(init, run))
        batch = parent["optim"]["batch_size"] * started.get("world_size", 1)
        hours = round(_wall_time(run, batch, started["iteration"]) / 3600, 2)
        chain.append(
            {"init": init, "iterations": started["iteration"], "batch_size": batch,
             "wall_time_hours": hours}
        )  # fmt: skip
        init = parent["optim"].get("init")
    return chain


def _fail(message: str) -> None:
    print(f"ship_model.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _score(item: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` split at the first ``=`` (a value may hold one: ``--model rim=3task``)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip() or not value.strip():
        _fail(f"--score {item!r}: give KEY=VALUE, e.g. --score 'BSD68 sigma 25 PSNR=28.10 dB'")
    return key.strip(), value.strip()


def _check_inputs(args: argparse.Namespace, out: Path) -> None:
    """Refuse what would ship something else than asked: no run, no recipe, a clash."""
    if not (args.run / "config.yaml").is_file():
        _fail(f"{args.run} is no run folder of rimkit train (it has no config.yaml)")
    if not (args.run / "last.safetensors").is_file():
        _fail(
            f"{args.run} has no last.safetensors: ship the folder of a run that saved a checkpoint"
        )
    if not Path(args.recipe).is_file():
        _fail(f"--recipe {args.recipe}: no such file (give the config the run was started from)")
    if out.exists() and not out.is_dir():
        _fail(f"--out {out} is a file, not a folder")
    clash = [out / f"{args.name}{ext}" for ext in (".safetensors", ".json", ".md")]
    clash = [path for path in clash if path.exists()]
    if clash and not args.force:
        _fail(f"{clash[0]} exists: give --force to replace model {args.name!r}, or another name")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", type=Path, help="run folder of rimkit train")
    p.add_argument("name", help="model name, e.g. denoise-gray")
    p.add_argument("--task", required=True, help=f"what it restores ({', '.join(TASKS)}, ...)")
    p.add_argument(
        "--out", type=Path, help="folder for the weights and cards (default: the package's zoo)"
    )
    p.add_argument("--force", action="store_true", help="replace a model of that name there")
    p.add_argument("--description", default="")
    p.add_argument("--hardware", required=True, help="what the model is made to run on")
    p.add_argument("--recipe", required=True, help="the config the run was started from")
    p.add_argument("--trained-on", default="", help="hardware the training ran on")
    p.add_argument("--score", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--score-command", default="", help="the command that measured the scores")
    p.add_argument("--notes", default="")
    p.add_argument(
        "--checkpoint", choices=["best", "last"], default="best",
        help="ship the best-validation checkpoint (default) or the last one, e.g. the weights "
        "a benchmark measured through the run folder's model.safetensors",
    )  # fmt: skip
    args = p.parse_args()
    out = args.out or WEIGHTS_DIR
    _check_inputs(args, out)
    scores = dict(_score(item) for item in args.score)
    if args.task not in TASKS:
        print(
            f"ship_model.py: note: task {args.task!r} is none the rimkit command knows "
            f"({', '.join(TASKS)}); the model loads from Python",
            file=sys.stderr,
        )

    config = yaml.safe_load((args.run / "config.yaml").read_text())
    model_cfg = RIMConfig.from_dict(config["model"])
    model = model_cfg.build()
    best = args.checkpoint == "best" and (args.run / "best.safetensors").exists()
    stem = args.run / ("best" if best else "last")
    meta = load_checkpoint(stem, model)
    last = read_meta(args.run / "last")
    lone_best = not (args.run / "model.safetensors").exists()  # then --model RUN loads best
    if best and meta["iteration"] != last["iteration"] and not lone_best:
        print(
            f"ship_model.py: note: shipping best (iteration {meta['iteration']}), not the last "
            f"weights (iteration {last['iteration']}), which --model {args.run} loads: give "
            f"scores measured with --model {args.run / 'best.safetensors'}, or ship "
            "--checkpoint last",
            file=sys.stderr,
        )
    planned = config["optim"]["iterations"]
    if last["iteration"] < planned:
        print(
            f"ship_model.py: note: the run stopped at iteration {last['iteration']} of "
            f"{planned} (rimkit train --resume {args.run} would finish it)",
            file=sys.stderr,
        )
    out.mkdir(parents=True, exist_ok=True)
    export_weights(out / f"{args.name}.safetensors", model, {"config": config})
    patches_per_iteration = config["optim"]["batch_size"] * last.get("world_size", 1)
    sigma = next((t.get("sigma") for t in config["tasks"] if t.get("name") == "denoise"), None)
    card = {
        "name": args.name,
        "task": args.task,
        "channels": model_cfg.channels,
        "train_steps": model_cfg.train_steps,
        "description": args.description,
        "hardware": args.hardware,
        "inference_gflop": round(inference_flops(model) / 1e9, 1),
        "data": _sources_text(config["data"]),
        "patch_size": config["data"]["patch_size"],
        "recipe": args.recipe,
        "architecture": {**config["model"], "parameters": count_parameters(model)},
        "tasks": config["tasks"],
        "sigma_range": sigma,
        "iterations": last["iteration"],
        "checkpoint": f"{stem.name} (iteration {meta['iteration']})",
        "batch_size": config["optim"]["batch_size"],
        "patches_seen": last["iteration"] * config["optim"]["batch_size"],
        "wall_time_hours": round(_wall_time(args.run, patches_per_iteration) / 3600, 2),
        "trained_on": args.trained_on,
        "fine_tuned_from": _lineage(config),
        "validation_psnr_per_step": meta.get("val_psnr_per_step"),
        "scores": scores,
        "score_command": args.score_command,
        "notes": args.notes,
        "shipped": time.strftime("%Y-%m-%d"),
    }
    atomic_write_text(out / f"{args.name}.json", json.dumps(card, indent=2) + "\n")
    atomic_write_text(out / f"{args.name}.md", _markdown(card))
    print(f"shipped {args.name}: {count_parameters(model):,} parameters, scores {scores}")


def _architecture(arch: dict) -> str:
    """One line: the variant, its widths and parameter count (an unrolled net has no link and
    its ``hidden`` counts conv layers per proximal CNN; an invertible RIM has no cell, its
    ``hidden`` is its state channels and ``features`` its coupling networks' width)."""
    size = f"{arch['parameters']:,} parameters"
    if arch["variant"] == "invertible":
        return (
            f"invertible RIM (i-RIM), state channels {arch['hidden']}, coupling width "
            f"{arch['features']}, link {arch['link']}, {size}"
        )
    if arch["variant"] == "unrolled":
        widths = f"features {arch['features']}, hidden {arch['hidden']} (conv layers per prox)"
    else:
        widths = f"features {arch['features']}, hidden {arch['hidden']}, link {arch['link']}"
    colour = {
        "opponent": ", one-channel cell in opponent colour coordinates",
        "opponent-guided": ", one-channel cell in opponent colour coordinates that also reads "
        "the luminance estimate",
    }.get(arch.get("color"), "")
    norm = arch.get("norm", "none")
    if norm != "none":
        widths += f", {norm} normalisation before each tanh"
    return f"{arch['variant']} with the {arch['cell']} cell{colour}, {widths}, {size}"


def _origin(step: dict) -> str:
    if "iterations" not in step:
        return f"`{step['init']}`"
    return (
        f"`{step['init']}`: {step['iterations']} x batch {step['batch_size']}, "
        f"{step['wall_time_hours']} h"
    )


def _size() -> str:
    return "x".join(str(n) for n in reversed(BSD68_SIZE))  # width x height, as 481x321


def _markdown(card: dict) -> str:
    arch = card["architecture"]
    lines = [
        f"# {card['name']}",
        "",
        card["description"],
        "",
        "| | |",
        "|---|---|",
        f"| task | {card['task']} |",
        f"| made to run on | {card['hardware']} |",
        *(
            [f"| network cost | {card['inference_gflop']} GFLOP per {_size()} image at T |"]
            if card.get("inference_gflop") is not None
            else []
        ),
        f"| architecture | {_architecture(arch)} |",
        f"| channels | {card['channels']} |",
        f"| trained steps T | {card['train_steps']} |",
        f"| training data | {card['data']}, {card['patch_size']}x{card['patch_size']} patches |",
        f"| tasks | {json.dumps(card['tasks'])} |",
        f"| recipe | `{card['recipe']}` |",
        f"| iterations | {card['iterations']} x batch {card['batch_size']} = "
        f"{card['patches_seen']:,} patches; shipped weights: {card['checkpoint']} |",
        f"| wall time | {card['wall_time_hours']} h on {card['trained_on']} |",
        *[f"| fine-tuned from | {_origin(step)} |" for step in card["fine_tuned_from"]],
        f"| validation PSNR per step (held-out patches) | {card['validation_psnr_per_step']} |",
        "",
        "## Measured scores",
        "",
    ]
    if card["scores"]:
        lines += [f"- {k}: {v}" for k, v in card["scores"].items()]
        lines += ["", f"Measured with: `{card['score_command']}`"]
    else:
        lines.append("None measured yet.")
    if card["notes"]:
        lines += ["", "## Notes", "", card["notes"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
