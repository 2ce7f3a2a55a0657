"""Tuned regularisation weights: argmax correctness, monotone in noise, fallbacks, provenance.

Everything runs on generated images; nothing here reads ../shared.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from rimkit.solvers import BASELINES, ISTAWavelet, TotalVariation, baseline
from rimkit.solvers.tuning import (
    DEFAULTS_PATH,
    DENOISE_GRID,
    NOISELESS_GRID,
    NOISY_GRID,
    SETTINGS,
    TUNED_BASELINES,
    Setting,
    _crops,
    default_weight,
    grid_key,
    grid_search,
    load_mri_slices,
    load_training_crops,
    main,
    psnr,
    tune,
    tuned_baseline,
    tuning_iterations,
)


def blocky_images(n: int, size: int, seed: int = 0) -> list[Tensor]:
    """Piecewise-constant rectangles on a gentle gradient, lightly blurred: ``(1, H, W)`` each."""
    g = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(n):
        img = torch.linspace(0.2, 0.5, size).expand(size, size).clone()
        for _ in range(5):
            top, left = torch.randint(0, size - 4, (2,), generator=g).tolist()
            h, w = torch.randint(4, size // 2, (2,), generator=g).tolist()
            img[top : top + h, left : left + w] = 0.1 + 0.8 * torch.rand(1, generator=g)
        img = torch.nn.functional.avg_pool2d(
            img[None, None], 3, stride=1, padding=1, count_include_pad=False
        )
        images.append(img[0])
    return images


@pytest.mark.parametrize("name", TUNED_BASELINES)
def test_grid_search_picks_the_best_grid_value(name):
    x = torch.stack(blocky_images(2, 24))
    m = Setting("denoise", 30, crop=24).measure(x, torch.Generator().manual_seed(1))
    grid = [0.003, 0.01, 0.03, 0.1, 0.3]
    result = grid_search(name, m, grid, iterations=15, level=30)
    expected = []  # every grid value rerun by hand
    for weight in grid:
        solver = baseline(name, weight=weight, iterations=15)
        estimate = solver(m.y, m.operator, m.sigma, x0=m.x0).final
        expected.append(float(psnr(estimate, x).mean()))
    np.testing.assert_allclose(result.psnr, expected, rtol=0, atol=1e-4)
    assert all(result.best_psnr >= p for p in result.psnr)
    assert result.weight == grid[int(np.argmax(expected))]
    assert (result.baseline, result.task, result.level) == (name, "denoise", 30.0)
    assert len(set(np.round(result.psnr, 3))) > 1  # the weight matters


def test_the_chosen_tv_weight_grows_with_the_noise_level():
    images = blocky_images(3, 32, seed=2)
    levels = (5, 20, 60)
    settings = [Setting("denoise", s, crop=32) for s in levels]
    grid = [float(w) for w in np.logspace(-3, 0, 13)]
    results = tune(images, settings, ["tv"], grid, {"tv": 60})
    weights = [r.weight for r in results]
    assert [r.level for r in results] == list(map(float, levels))
    assert weights == sorted(weights) and weights[0] < weights[-1], weights
    assert not any(r.at_edge for r in results), weights


def write_table(path, rows):
    path.write_text(json.dumps({"format": 1, "provenance": {}, "results": rows}))
    return path


def test_default_weight_takes_the_nearest_level_and_falls_back(tmp_path):
    table = write_table(
        tmp_path / "defaults.json",
        [
            {"baseline": "tv", "task": "denoise", "level": 15.0, "weight": 0.03},
            {"baseline": "tv", "task": "denoise", "level": 50.0, "weight": 0.2},
            {"baseline": "tv", "task": "sr", "level": 2.0, "weight": 0.001},
            {"baseline": "tv", "task": "gaussian", "level": 0.25, "weight": 0.002},
        ],
    )
    assert default_weight("tv", "denoise", 15, table) == 0.03
    assert default_weight("tv", "denoise", 20, table) == 0.03  # nearest on a log scale
    assert default_weight("tv", "denoise", 40, table) == 0.2
    assert default_weight("tv", "denoise", 0, table) == 0.03  # noiseless: the lowest level
    assert default_weight("tv", "sr-x4", 4, table) == 0.001  # a measurement's name works
    assert default_weight("tv", "projection-gaussian", 0.1, table) == 0.002
    # not tuned: the class default
    assert default_weight("tv", "mri", 4.0, table) == TotalVariation().weight
    assert default_weight("tv", "bernoulli", 0.25, table) == TotalVariation().weight
    assert default_weight("ista-wavelet", "denoise", 25, table) == ISTAWavelet().weight
    assert default_weight("tv", "denoise", 25, tmp_path / "absent.json") == TotalVariation().weight
    with pytest.raises(ValueError, match="no regularisation weight"):
        default_weight("zero-filled", "denoise", 25, table)
    with pytest.raises(ValueError, match="unknown baseline 'tvv'"):
        default_weight("tvv", "denoise", 25, table)


def test_default_weight_takes_the_nearest_noise_level(tmp_path):
    rows = [
        {"baseline": "tv", "task": "mri", "level": 4.0, "sigma": 0.0, "weight": 0.001},
        {"baseline": "tv", "task": "mri", "level": 4.0, "sigma": 5.0, "weight": 0.01},
        {"baseline": "tv", "task": "mri", "level": 4.0, "sigma": 15.0, "weight": 0.05},
        {"baseline": "tv", "task": "mri", "level": 8.0, "sigma": 0.0, "weight": 0.002},
        {"baseline": "tv", "task": "sr", "level": 2.0, "weight": 0.0003},  # no sigma: noiseless
    ]
    table = write_table(tmp_path / "defaults.json", rows)
    assert default_weight("tv", "mri", 4, table) == 0.001  # sigma left out: noiseless
    assert default_weight("tv", "mri", 4, table, sigma=0) == 0.001
    assert default_weight("tv", "mri", 4, table, sigma=1) == 0.001  # log(1 + sigma) scale
    assert default_weight("tv", "mri", 4, table, sigma=3) == 0.01
    assert default_weight("tv", "mri", 4, table, sigma=10) == 0.05
    assert default_weight("tv", "mri", 4, table, sigma=200) == 0.05
    assert default_weight("tv", "mri", 7, table, sigma=15) == 0.002  # the level comes first
    assert default_weight("tv", "sr", 2, table, sigma=15) == 0.0003  # the only row


def test_noisy_settings_measure_with_noise_and_try_the_noisy_grid():
    x = torch.stack(blocky_images(2, 24))
    m = Setting("sr", 2, crop=24, sigma=15).measure(x, torch.Generator().manual_seed(0))
    noise = m.y - m.operator(x)
    assert m.sigma.tolist() == pytest.approx([15 / 255] * 2)
    assert float(noise.std()) == pytest.approx(15 / 255, rel=0.2)
    assert Setting("sr", 2, sigma=15).grid == NOISY_GRID and Setting("sr", 2).grid != NOISY_GRID
    assert grid_search("cg-tikhonov", m, [0.01], iterations=2, level=2).sigma == 15.0
    assert sum(s.task == "lensing" and s.noise == 15 for s in SETTINGS) == 3  # every radius
    with pytest.raises(ValueError, match="its level"):
        Setting("denoise", 25, sigma=5)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        Setting("mri", 4, sigma=-1)


def test_the_chosen_tv_weight_grows_with_the_noise_of_an_inpainting():
    images = blocky_images(3, 32, seed=5)
    settings = [Setting("inpaint", 0.5, crop=32, sigma=s) for s in (0, 10, 40)]
    grid = [float(w) for w in np.logspace(-4, 0, 13)]
    weights = [r.weight for r in tune(images, settings, ["tv"], grid, {"tv": 60})]
    assert weights == sorted(weights) and weights[0] < weights[-1], weights


def test_a_baseline_is_run_with_the_weight_tuned_for_its_noise(tmp_path, monkeypatch):
    from rimkit.operators import Inpainting
    from rimkit.reconstruct import initial_estimate
    from rimkit.solvers import tuned
    from rimkit.solvers.selection import run_baseline

    rows = [
        {
            "baseline": "tv",
            "task": "inpaint",
            "level": 0.5,
            "sigma": s,
            "weight": w,
            "iterations": 5,
        }
        for s, w in ((0.0, 0.001), (15.0, 0.2))
    ]
    monkeypatch.setattr(tuned, "DEFAULTS_PATH", write_table(tmp_path / "d.json", rows))
    x = torch.stack(blocky_images(1, 16))
    mask = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    op = Inpainting(mask)
    y = op(x) + 0.06 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * mask
    got = run_baseline("tv", ("inpaint", 0.5), y, op, 15 / 255)[-1]
    x0 = initial_estimate(op, y)
    want = TotalVariation(weight=0.2, iterations=5)(y, op, 15 / 255, x0=x0).final
    other = TotalVariation(weight=0.001, iterations=5)(y, op, 15 / 255, x0=x0).final
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, other)
    from_numpy = run_baseline("tv", ("inpaint", 0.5), y.double().numpy(), op, 15 / 255)[-1]
    torch.testing.assert_close(from_numpy, want)
    with pytest.raises(ValueError, match=r"y must be a torch\.Tensor or a numpy array"):
        run_baseline("tv", ("inpaint", 0.5), y.tolist(), op, 15 / 255)


def test_tuned_baseline_uses_the_tuned_weight_unless_given():
    solver = tuned_baseline("fista-wavelet", "inpaint", 0.5, iterations=7)
    assert solver.weight == default_weight("fista-wavelet", "inpaint", 0.5)
    assert solver.iterations == 7
    assert tuned_baseline("tv", "denoise", 25, weight=0.5).weight == 0.5
    assert type(tuned_baseline("zero-filled", "denoise", 25)) is BASELINES["zero-filled"]


@pytest.fixture
def training_folder(tmp_path):
    folder = tmp_path / "data" / "train" / "gen"
    folder.mkdir(parents=True)
    for i, img in enumerate(blocky_images(3, 80, seed=4)):
        Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def test_the_command_line_writes_weights_with_their_provenance(training_folder, tmp_path):
    out = tmp_path / "defaults.json"
    argv = ["--data", str(tmp_path / "data"), "--folder", "train/gen", "--out", str(out)]
    argv += ["--images", "2", "--quick", "--tasks", "denoise", "fourier"]
    argv += ["--baselines", "tv", "cg-tikhonov"]
    assert main(argv) == 0
    table = json.loads(out.read_text())
    prov = table["provenance"]
    for key in ("method", "date", "images", "grid", "iterations", "seed", "settings", "quick"):
        assert key in prov, key
    assert len(prov["images"]) == 2 and all(p.startswith("train/gen/") for p in prov["images"])
    assert prov["quick"] is True and prov["seed"] == 0
    assert set(prov["iterations"]) == {"tv", "cg-tikhonov"}
    rows = table["results"]
    assert len(rows) == 8 * 2  # 5 noise levels + fourier at sigma 0, 5, 15; two baselines
    for row in rows:
        grid = prov["grid"][grid_key(row["task"], row["sigma"])]
        assert row["grid"] == grid and row["weight"] in row["grid"]
        assert row["psnr"] == pytest.approx(max(row["psnr_grid"]), abs=1e-3)
        full = DENOISE_GRID if row["task"] == "denoise" else NOISY_GRID
        if row["task"] == "fourier" and row["sigma"] == 0:
            full = NOISELESS_GRID
        assert row["grid"] == list(full[::2])  # --quick: every other weight
        assert row["iterations"] == tuning_iterations(row["baseline"], row["task"]) // 5
    # TV runs 1000 steps on the patch tasks (100 elsewhere), a fifth of each with --quick
    assert prov["iterations"] == {"tv": {"denoise": 20, "fourier": 200}, "cg-tikhonov": 6}
    assert default_weight("tv", "denoise", 25, out) == next(
        r["weight"] for r in rows if r["baseline"] == "tv" and r["level"] == 25
    )


def test_a_setting_is_tuned_alike_alone_or_among_others():
    images = blocky_images(2, 64, seed=6)
    chosen = [s for s in SETTINGS if s.task == "inpaint"][-2:]
    small = [dataclasses.replace(s, crop=16) for s in chosen]  # not shipped: seeded after them
    both = tune(images, chosen + small, ["cg-tikhonov"], [0.01, 0.1], {"cg-tikhonov": 3})
    alone = tune(images, chosen[1:], ["cg-tikhonov"], [0.01, 0.1], {"cg-tikhonov": 3})
    assert both[1].psnr == alone[0].psnr


def test_several_crops_per_image_are_drawn_where_a_setting_asks():
    images = blocky_images(2, 48)
    x = _crops(images, 16, torch.Generator().manual_seed(0), per_image=3)
    assert x.shape == (6, 1, 16, 16)
    assert not torch.equal(x[0], x[1])  # distinct positions in the same image
    one = _crops(images, 16, torch.Generator().manual_seed(0))
    assert torch.equal(one[0], x[0])  # the first crop is the one a single-crop setting takes
    with pytest.raises(ValueError, match="crops_per_image"):
        Setting("gaussian", 0.25, crop=32, crops_per_image=0)


def test_evaluation_images_are_refused(tmp_path, capsys):
    folder = tmp_path / "eval" / "Set12"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((80, 80), np.uint8)).save(folder / "0.png")
    with pytest.raises(ValueError, match="evaluation folder"):
        load_training_crops(folder, 1)
    argv = ["--data", str(tmp_path), "--folder", "eval/Set12", "--out", str(tmp_path / "o.json")]
    assert main(argv) == 2
    assert "training images only" in capsys.readouterr().err


def test_the_shipped_table_covers_every_baseline_and_setting():
    if not DEFAULTS_PATH.is_file():
        pytest.skip("defaults.json not generated yet")
    table = json.loads(DEFAULTS_PATH.read_text())
    assert table["provenance"]["quick"] is False
    assert not any("eval" in p.split("/") for p in table["provenance"]["images"])
    assert table["provenance"]["settings"] == [dataclasses.asdict(s) for s in SETTINGS]
    assert all(name.startswith("mri/") for name in table["provenance"]["mri_images"])
    tuned = {(r["baseline"], r["task"], r["level"], r["sigma"]) for r in table["results"]}
    assert tuned == {
        (b, s.task, float(s.level), s.noise) for b in TUNED_BASELINES for s in SETTINGS
    }
    row = next(r for r in table["results"] if (r["baseline"], r["task"]) == ("tv", "sr"))
    solver = tuned_baseline("tv", "sr", row["level"])  # the tuned weight and iteration count
    assert (solver.weight, solver.iterations) == (row["weight"], row["iterations"])


def _brain_volume(path, size=40, seed=0):
    """A blocky 'head' in an empty field of view, as an MRI volume file."""
    volume = np.zeros((size, size, size), np.float32)
    for k, img in enumerate(blocky_images(size - 10, size, seed=seed)):
        volume[k + 5, 4:-4, 4:-4] = img[0, 4:-4, 4:-4].numpy()
    np.savez(path, volume=volume)
    return path


def test_mri_settings_are_tuned_on_slices_of_an_mri_volume(tmp_path):
    assert {s.source for s in SETTINGS if s.task == "mri"} == {"mri"}
    assert {s.source for s in SETTINGS if s.task != "mri"} == {"natural"}
    path = _brain_volume(tmp_path / "head.npz")
    images, names = load_mri_slices(path, 3, seed=1)
    assert len(images) == 3 and all(0 <= float(x.min()) <= float(x.max()) <= 1 for x in images)
    assert all(name.startswith("axis") for name in names)
    assert load_mri_slices(path, 3, seed=1)[1] == names  # seeded
    mri = dataclasses.replace(next(s for s in SETTINGS if s.task == "mri"), crop=16)
    with pytest.raises(ValueError, match="give mri_images"):
        tune(blocky_images(2, 32), [mri], ["cg-tikhonov"], [0.01], {"cg-tikhonov": 2})
    result = tune(blocky_images(2, 32), [mri], ["cg-tikhonov"], [0.01, 0.1],
                  {"cg-tikhonov": 2}, mri_images=images)  # fmt: skip
    assert result[0].task == "mri" and len(result[0].psnr) == 2
    (tmp_path / "eval").mkdir()
    with pytest.raises(ValueError, match="evaluation volume"):
        load_mri_slices(_brain_volume(tmp_path / "eval" / "v.npz"), 1)
    with pytest.raises(ValueError, match="does not exist"):
        load_mri_slices(tmp_path / "none.npz", 1)
    with pytest.raises(ValueError, match="source must be one of natural, mri"):
        Setting("mri", 4.0, source="brains")


def test_update_replaces_only_the_tuned_rows(training_folder, tmp_path):
    out = tmp_path / "defaults.json"
    argv = ["--data", str(tmp_path / "data"), "--folder", "train/gen", "--out", str(out),
            "--images", "2", "--baselines", "cg-tikhonov"]  # fmt: skip
    assert main([*argv, "--quick", "--tasks", "denoise", "sr"]) == 0
    before = json.loads(out.read_text())
    _brain_volume(tmp_path / "data" / "head.npz")
    update = [*argv, "--tasks", "sr", "--update", "--mri-volume", "head.npz"]
    assert main([*update, "--quick"]) == 2  # smoke-test rows are kept out of a table
    missing = list(update)
    missing[missing.index("--out") + 1] = str(tmp_path / "none.json")
    with pytest.MonkeyPatch.context() as patch:  # refused before the work: tune never runs
        patch.setattr("rimkit.solvers.tuning.tune", lambda *a, **k: pytest.fail("tuned"))
        assert main(missing) == 2
    assert main(update) == 0
    after = json.loads(out.read_text())
    rows = {(r["task"], r["level"], r["sigma"]): r for r in after["results"]}
    old = {(r["task"], r["level"], r["sigma"]): r for r in before["results"]}
    assert rows.keys() == old.keys()
    assert all(rows[k] == old[k] for k in rows if k[0] == "denoise")
    assert all(rows[k]["grid"] == list(NOISY_GRID if k[2] else NOISELESS_GRID)
               for k in rows if k[0] == "sr")  # fmt: skip
    # the provenance's iterations follow the rows: the quick denoising rows', the full sr rows'
    assert after["provenance"]["iterations"] == {"cg-tikhonov": {"denoise": 6, "sr": 30}}
    update_note = after["provenance"]["updates"][-1]
    assert "--update" in update_note["command"] and ["sr", 2.0, 5.0] in update_note["settings"]
    assert after["provenance"]["settings"] == [dataclasses.asdict(s) for s in SETTINGS]


def test_a_task_without_tuned_weights_gets_a_warning():
    with pytest.warns(UserWarning, match="no baseline weights are tuned for task 'deblur'"):
        assert tuned_baseline("tv", "deblur", 2.55).weight == TotalVariation().weight
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tuned_baseline("tv", "blur", 2.55), tuned_baseline("tv", "projection-gaussian", 0.25)
        tuned_baseline("tv", "denoise", 0.3)  # noise below a gray level is no slip


def test_levels_pick_the_settings_to_tune(training_folder, tmp_path):
    out = tmp_path / "d.json"
    argv = ["--data", str(tmp_path / "data"), "--folder", "train/gen", "--out", str(out),
            "--images", "2", "--baselines", "cg-tikhonov", "--quick", "--tasks", "sr"]  # fmt: skip
    assert main([*argv, "--levels", "3"]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {(r["level"], r["sigma"]) for r in rows} == {(3.0, 0.0), (3.0, 5.0), (3.0, 15.0)}
    assert main([*argv, "--levels", "7"]) == 2
    assert [s.level for s in SETTINGS if s.task == "mri" and s.sigma is None] == [4.0, 8.0, 2.0]
