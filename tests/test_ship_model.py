"""scripts/ship_model.py: a trained run becomes zoo weights and a card that loads."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from rimkit.train import train
from test_train import tiny_config

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ship_model.py"


def _script():
    spec = importlib.util.spec_from_file_location("ship_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _with_recipes(tmp_path, monkeypatch) -> None:
    """Work in ``tmp_path``, where the recipes the tests name (x.yaml, configs/x.yaml) exist."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir(exist_ok=True)
    for recipe in ("x.yaml", "configs/x.yaml"):
        (tmp_path / recipe).write_text("model: {}\n")


def _train_and_ship(image_folder, tmp_path, monkeypatch, *options: str):
    """Train the tiny run into ``tmp_path/run`` and ship it as ``tmp_path/zoo/tiny``."""
    _with_recipes(tmp_path, monkeypatch)
    run = tmp_path / "run"
    train(tiny_config(image_folder), run, progress=False)
    ship = _script()
    monkeypatch.setattr(ship, "WEIGHTS_DIR", tmp_path / "zoo")
    argv = ["ship_model.py", str(run), "tiny", "--task", "denoise", "--hardware", "CPU"]
    monkeypatch.setattr(sys, "argv", [*argv, *options])
    ship.main()
    return ship, run


def test_a_run_ships_as_weights_and_cards_with_its_facts(image_folder, tmp_path, monkeypatch):
    options = ["--recipe", "configs/x.yaml", "--score", "BSD68 sigma 25=20.00 dB"]
    ship, run = _train_and_ship(image_folder, tmp_path, monkeypatch, *options)

    card = json.loads((tmp_path / "zoo" / "tiny.json").read_text())
    assert card["iterations"] == 6 and card["patches_seen"] == 6 * 4
    assert card["patch_size"] == 16 and card["scores"] == {"BSD68 sigma 25": "20.00 dB"}
    assert card["wall_time_hours"] == round(ship._wall_time(run, 4) / 3600, 2)
    assert ship._wall_time(run, 4) > 0
    text = (tmp_path / "zoo" / "tiny.md").read_text()
    assert "16x16 patches" in text and "`configs/x.yaml`" in text
    assert card["inference_gflop"] > 0 and "GFLOP per 481x321 image at T" in text

    from rimkit.zoo import load_model

    loaded = load_model(str(tmp_path / "zoo" / "tiny.safetensors"))
    assert loaded.model.train_steps == 2


def _ship_again(ship, monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """Run the script's main with ``argv``; its exit status and standard error."""
    monkeypatch.setattr(sys, "argv", ["ship_model.py", *argv])
    try:
        ship.main()
        status = 0
    except SystemExit as stop:
        status = stop.code
    return status, capsys.readouterr().err


def test_a_shipped_name_is_kept_unless_forced_and_out_takes_another_folder(
    image_folder, tmp_path, monkeypatch, capsys
):
    ship, run = _train_and_ship(image_folder, tmp_path, monkeypatch, "--recipe", "x.yaml")
    before = (tmp_path / "zoo" / "tiny.safetensors").read_bytes()
    base = [str(run), "tiny", "--task", "denoise", "--hardware", "CPU", "--recipe", "x.yaml"]

    status, err = _ship_again(ship, monkeypatch, capsys, *base)
    assert status == 2 and "tiny.safetensors exists: give --force" in err
    assert (tmp_path / "zoo" / "tiny.safetensors").read_bytes() == before

    mine = tmp_path / "mine"
    assert _ship_again(ship, monkeypatch, capsys, *base, "--out", str(mine))[0] == 0
    assert sorted(p.name for p in mine.iterdir()) == ["tiny.json", "tiny.md", "tiny.safetensors"]
    assert _ship_again(ship, monkeypatch, capsys, *base, "--force")[0] == 0

    status, err = _ship_again(ship, monkeypatch, capsys, *base, "--out", str(run / "log.csv"))
    assert status == 2 and "is a file, not a folder" in err


def test_bad_ship_inputs_are_named_before_anything_is_written(
    image_folder, tmp_path, monkeypatch, capsys
):
    ship, run = _train_and_ship(image_folder, tmp_path, monkeypatch, "--recipe", "x.yaml")
    base = ["--task", "denoise", "--hardware", "CPU", "--out", str(tmp_path / "new")]
    cases = {
        "no run folder of rimkit train": [str(tmp_path / "nope"), "a", *base, "--recipe", "x.yaml"],
        "--recipe nope.yaml: no such file": [str(run), "a", *base, "--recipe", "nope.yaml"],
        "--score 'PSNR 28': give KEY=VALUE": [
            str(run), "a", *base, "--recipe", "x.yaml", "--score", "PSNR 28"
        ],
    }  # fmt: skip
    for message, argv in cases.items():
        status, err = _ship_again(ship, monkeypatch, capsys, *argv)
        assert status == 2 and message in err, (message, err)
    assert not (tmp_path / "new").exists()
    argv = [str(run), "a", *base[2:], "--task", "columns", "--recipe", "x.yaml"]
    status, err = _ship_again(ship, monkeypatch, capsys, *argv)  # a task of one's own
    assert status == 0 and "note: task 'columns' is none the rimkit command knows" in err


def test_a_score_value_may_hold_an_equals_sign_and_an_unfinished_run_gets_a_note(
    image_folder, tmp_path, monkeypatch, capsys
):
    _with_recipes(tmp_path, monkeypatch)
    run = tmp_path / "run"
    train(tiny_config(image_folder, iterations=6), run, stop_after=3, progress=False)
    ship = _script()
    argv = [str(run), "tiny", "--task", "denoise", "--hardware", "CPU", "--recipe", "x.yaml"]
    argv += ["--out", str(tmp_path / "zoo"), "--score", "Lensing PSNR=31.57 dB (--model rim=3task)"]
    status, err = _ship_again(ship, monkeypatch, capsys, *argv)
    assert status == 0 and "stopped at iteration 3 of 6" in err
    card = json.loads((tmp_path / "zoo" / "tiny.json").read_text())
    assert card["scores"] == {"Lensing PSNR": "31.57 dB (--model rim=3task)"}


def test_wall_time_sums_iterations_once_and_skips_pauses(tmp_path):
    # Iteration 2 is logged twice (a resume repeats it); the gap between sessions is not logged.
    rows = ["iteration,loss,patches_per_s", "1,0.1,8", "2,0.1,4", "2,0.1,4", "3,0.1,2"]
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n")
    assert _script()._wall_time(tmp_path, 8) == 8 / 8 + 8 / 4 + 8 / 2


def test_last_ships_the_weights_a_run_folder_loads(image_folder, tmp_path, monkeypatch):
    from rimkit.train.loop import weights_digest
    from rimkit.zoo import load_model

    options = ["--recipe", "x.yaml", "--checkpoint", "last"]
    _, run = _train_and_ship(image_folder, tmp_path, monkeypatch, *options)

    card = json.loads((tmp_path / "zoo" / "tiny.json").read_text())
    assert card["checkpoint"] == "last (iteration 6)"
    shipped = load_model(str(tmp_path / "zoo" / "tiny.safetensors")).model
    assert weights_digest(shipped) == weights_digest(load_model(str(run)).model)


def test_a_fine_tuned_run_names_the_run_it_started_from(image_folder, tmp_path, monkeypatch):
    base = tmp_path / "base"
    train(tiny_config(image_folder, iterations=3), base, progress=False)
    run = tmp_path / "tuned"
    cfg = tiny_config(image_folder, iterations=3, init=str(base / "best.safetensors"))
    train(cfg, run, progress=False)
    ship = _script()
    _with_recipes(tmp_path, monkeypatch)
    monkeypatch.setattr(ship, "WEIGHTS_DIR", tmp_path / "zoo")
    argv = ["ship_model.py", str(run), "tuned", "--task", "denoise", "--hardware", "CPU"]
    monkeypatch.setattr(sys, "argv", [*argv, "--recipe", "x.yaml"])
    ship.main()

    card = json.loads((tmp_path / "zoo" / "tuned.json").read_text())
    (origin,) = card["fine_tuned_from"]
    assert origin["init"] == str(base / "best.safetensors")
    assert origin["iterations"] == 3 and origin["batch_size"] == 4
    assert origin["wall_time_hours"] == round(ship._wall_time(base, 4) / 3600, 2)
    text = (tmp_path / "zoo" / "tuned.md").read_text()
    assert f"| fine-tuned from | `{base / 'best.safetensors'}`: 3 x batch 4" in text
    assert ship._lineage({"optim": {"init": "denoise-gray"}}) == [{"init": "denoise-gray"}]


def test_the_lineage_counts_the_iterations_of_the_checkpoint_a_fine_tune_started_from(
    image_folder, tmp_path
):
    base = tmp_path / "base"
    cfg = tiny_config(image_folder, iterations=6)
    train(cfg, base, stop_after=3, progress=False)
    early = base / "early.safetensors"
    early.write_bytes((base / "last.safetensors").read_bytes())
    train(cfg, base, resume=True, progress=False)
    ship = _script()

    (origin,) = ship._lineage({"optim": {"init": str(early)}})
    assert origin["iterations"] == 3
    assert origin["wall_time_hours"] == round(ship._wall_time(base, 4, upto=3) / 3600, 2)
    assert ship._wall_time(base, 4, upto=3) < ship._wall_time(base, 4)
    (whole,) = ship._lineage({"optim": {"init": str(base)}})
    assert whole["iterations"] == 6


def test_the_architecture_line_names_an_opponent_colour_model():
    ship = _script()
    arch = {"variant": "rim", "cell": "restoration", "features": 32, "hidden": 64}
    arch |= {"link": "sigmoid", "parameters": 1000}
    assert "opponent" not in ship._architecture(arch | {"color": "native"})
    assert "normalisation" not in ship._architecture(arch | {"norm": "none"})
    assert ", layer normalisation before each tanh, 1,000 parameters" in ship._architecture(
        arch | {"norm": "layer"}
    )
    line = ship._architecture(arch | {"color": "opponent"})
    assert "one-channel cell in opponent colour coordinates" in line and "1,000 parameters" in line
    guided = ship._architecture(arch | {"color": "opponent-guided"})
    assert "opponent colour coordinates that also reads the luminance estimate" in guided
    invertible = ship._architecture(arch | {"variant": "invertible", "hidden": 16})
    assert invertible == (
        "invertible RIM (i-RIM), state channels 16, coupling width 32, link sigmoid, "
        "1,000 parameters"
    )


def test_each_shipped_card_is_the_writer_rendering_of_its_json():
    """A card's Markdown never drifts from the facts in its JSON (edit the JSON, re-render)."""
    ship = _script()
    cards = sorted((SCRIPT.parents[1] / "src" / "rimkit" / "zoo" / "weights").glob("*.json"))
    assert cards
    for path in cards:
        card = json.loads(path.read_text())
        assert ship._markdown(card) == path.with_suffix(".md").read_text(), path.name


def _render_script():
    path = SCRIPT.with_name("render_cards.py")
    spec = importlib.util.spec_from_file_location("render_cards", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_render_cards_rewrites_only_the_markdown_an_edited_json_changed(tmp_path):
    render = _render_script()
    source = SCRIPT.parents[1] / "src" / "rimkit" / "zoo" / "weights"
    for name in ("sr", "3task"):
        for suffix in (".json", ".md"):
            (tmp_path / f"{name}{suffix}").write_text((source / f"{name}{suffix}").read_text())
    assert render.render_cards([], tmp_path) == []
    card = json.loads((tmp_path / "sr.json").read_text())
    card["scores"]["a new score"] = "1.00 dB"
    (tmp_path / "sr.json").write_text(json.dumps(card))
    assert render.render_cards([], tmp_path) == [tmp_path / "sr.md"]
    assert "- a new score: 1.00 dB" in (tmp_path / "sr.md").read_text()
    assert (tmp_path / "3task.md").read_text() == (source / "3task.md").read_text()


def test_render_cards_names_a_missing_card_and_the_known_ones(tmp_path):
    render = _render_script()
    (tmp_path / "sr.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"no card named nope .*\(cards: sr\)"):
        render.render_cards(["nope"], tmp_path)
    with pytest.raises(SystemExit, match=r"sr.json is not a model card \(KeyError"):
        render.render_cards(["sr"], tmp_path)  # "{}" has no fields


def test_the_data_line_names_every_pooled_source():
    ship = _script()
    assert ship._sources_text({"train": "train/BSDS300-train", "gray": True}) == (
        "train/BSDS300-train (gray)"
    )
    pooled = {"train": ["mri/mni152_t1_2009a.npz", "train/BSDS300-train"], "gray": True}
    assert ship._sources_text(pooled) == "mri/mni152_t1_2009a.npz + train/BSDS300-train (gray)"


def test_each_shipped_card_states_the_network_cost_it_measures():
    """Every card gives its model's GFLOP per 481x321 image; the cheap model's is counted
    again here, and the ablations' order follows their architecture."""
    from rimkit.models.cost import inference_flops
    from rimkit.zoo import WEIGHTS_DIR, list_models, load_model

    cards = {card.name: card for card in list_models()}
    assert cards and all(card.inference_gflop > 0 for card in cards.values())
    assert sorted(p.stem for p in WEIGHTS_DIR.glob("*.json")) == sorted(cards)
    model = load_model("unrolled-denoise-gray").model
    assert round(inference_flops(model) / 1e9, 1) == cards["unrolled-denoise-gray"].inference_gflop
    assert cards["ffn-3task"].inference_gflop < cards["gdn-3task"].inference_gflop
    assert cards["gdn-3task"].inference_gflop < cards["3task"].inference_gflop  # no estimate in


def test_shipping_a_best_that_is_not_the_last_says_which_weights_to_score(
    image_folder, tmp_path, monkeypatch, capsys
):
    ship, run = _train_and_ship(image_folder, tmp_path, monkeypatch, "--recipe", "x.yaml")
    capsys.readouterr()
    base = [str(run), "tiny", "--task", "denoise", "--hardware", "CPU", "--recipe", "x.yaml"]
    best = json.loads((run / "best.json").read_text())
    best["iteration"] = 3  # an earlier best than the last weights (iteration 6)
    (run / "best.json").write_text(json.dumps(best))
    status, err = _ship_again(ship, monkeypatch, capsys, *base, "--force")
    assert status == 0 and "shipping best (iteration 3), not the last weights (iteration 6)" in err
    assert f"--model {run / 'best.safetensors'}" in err
    status, err = _ship_again(ship, monkeypatch, capsys, *base, "--force", "--checkpoint", "last")
    assert status == 0 and "shipping best" not in err
