"""Baselines through the reconstruct path, and `rimkit compare` on a measurement of one's own."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

from rimkit.cli import main
from rimkit.compare import compare, measurement_scores, write_comparison
from rimkit.models import RIMConfig
from rimkit.pipeline import restore, shown_measurement
from rimkit.train.checkpoint import export_weights


def clean() -> np.ndarray:
    return skimage.data.camera()[192:288, 192:288] / 255.0  # (96, 96)


def noisy(sigma255: float = 25, seed: int = 0) -> np.ndarray:
    return clean() + np.random.default_rng(seed).normal(0, sigma255 / 255, (96, 96))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def tiny_model(folder) -> str:
    cfg = RIMConfig(features=4, hidden=4, train_steps=2)
    path = folder / "tiny.safetensors"
    export_weights(path, cfg.build(), {"config": {"model": cfg.to_dict()}})
    return str(path)


@pytest.mark.parametrize("name", ["tv", "bm3d"])
def test_a_baseline_restores_through_the_reconstruct_path(name):
    y = noisy()
    out = restore(y, "denoise", None, baseline=name)
    assert out.image.shape == y.shape and len(out.frames) == 1
    assert abs(out.sigma - 25) < 1.5  # estimated, as for a model
    assert psnr(out.image, clean()) > psnr(np.clip(y, 0, 1), clean()) + 3


def test_baselines_take_every_channel_and_super_resolution_on_luma():
    rgb = skimage.data.astronaut()[100:196, 100:196] / 255.0
    y = rgb + np.random.default_rng(1).normal(0, 15 / 255, rgb.shape)
    out = restore(y, "denoise", None, baseline="tv", sigma=15)
    assert out.image.shape == rgb.shape and psnr(out.image, rgb) > psnr(np.clip(y, 0, 1), rgb)
    up = restore(rgb[::3, ::3], "sr", None, baseline="bicubic", scale=3, sigma=0)
    assert up.image.shape == (96, 96, 3)


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        ("denoise", {"model": "both"}, "give exactly one"),
        ("denoise", {"model": None, "baseline": None}, "give exactly one"),
        ("denoise", {"ensemble": 8}, "not for a baseline"),
        ("blur", {"baseline": "bm3d"}, "applies to denoise only"),
        ("denoise", {"baseline": "nlm"}, "unknown baseline 'nlm'"),
    ],
)
def test_restore_names_a_baseline_that_cannot_run(task, kwargs, message):
    kwargs = {"model": None, "baseline": "tv", **kwargs}
    if kwargs["model"] == "both":
        kwargs["model"] = RIMConfig(features=4, hidden=4, train_steps=2).build()
    with pytest.raises(ValueError, match=message):
        restore(noisy(), task, kwargs.pop("model"), sigma=25, **kwargs)


def test_an_mri_baseline_restores_k_space_as_a_complex_image():
    from rimkit.degrade import degrade

    kspace = degrade(clean(), "mri", acceleration=4, seed=0)
    outs = {
        b: restore(kspace.measurement, "mri", None, baseline=b).image for b in ("zero-filled", "tv")
    }
    assert outs["tv"].shape == clean().shape
    assert psnr(outs["tv"], clean()) > psnr(outs["zero-filled"], clean()) + 1


def test_compare_scores_every_method_told_one_estimate(tmp_path):
    results = compare(noisy(), "denoise", [tiny_model(tmp_path), "tv"], truth=clean())
    assert [r.label for r in results] == [tiny_model(tmp_path), "tv"]
    assert results[0].sigma == results[1].sigma and abs(results[0].sigma - 25) < 1.5
    for r in results:
        assert r.seconds > 0 and 0 < r.ssim <= 1
        expected = psnr(np.round(np.clip(r.image, 0, 1) * 255) / 255, clean())
        assert r.psnr == pytest.approx(expected)
    with pytest.raises(ValueError, match="named twice"):
        compare(noisy(), "denoise", ["tv", "tv"])
    with pytest.raises(ValueError, match="the clean image is"):
        compare(noisy(), "denoise", ["tv"], truth=clean()[:90])


def test_a_truth_of_the_wrong_size_is_refused_before_any_method_runs(monkeypatch):
    import rimkit.compare

    monkeypatch.setattr(rimkit.compare, "restore", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(ValueError, match=r"the clean image is \(90, 96\) but the restored one"):
        compare(noisy(), "denoise", ["tv"], truth=clean()[:90])
    with pytest.raises(ValueError, match=r"the restored one \(192, 192\)"):
        compare(noisy(), "sr", ["bicubic"], truth=clean(), scale=2)


def test_an_sr_truth_uncropped_by_degrade_is_cropped_with_a_note(tmp_path, capsys):
    from rimkit.degrade import degrade

    hr = clean()[:95, :94]  # degrade crops it to 93x93 for scale 3
    with pytest.warns(UserWarning, match="cropped from 95x94 to 93x93"):
        low = degrade(hr, "sr", scale=3).measurement
    with pytest.warns(UserWarning, match="clean image is cropped from 95x94 to 93x93"):
        (result,) = compare(low, "sr", ["bicubic"], truth=hr, scale=3)
    assert result.image.shape == (93, 93)
    assert result.psnr == pytest.approx(psnr(result.image, hr[:93, :93]), abs=0.02)
    with pytest.raises(ValueError, match=r"the clean image is \(96, 94\)"):  # past the crop
        compare(low, "sr", ["bicubic"], truth=clean()[:, :94], scale=3)


def test_cli_compare_crops_an_uncropped_sr_truth_for_its_figure_and_says_how_it_scored(
    tmp_path, capsys
):
    hr, low, out = tmp_path / "hr.png", tmp_path / "low.png", tmp_path / "cmp"
    Image.fromarray((clean()[:95, :94] * 255).round().astype(np.uint8)).save(hr)
    assert main(["degrade", str(hr), str(low), "--task", "sr", "--scale", "3", "-q"]) == 0
    argv = ["compare", str(low), "--task", "sr", "--scale", "3", "--truth", str(hr)]
    assert main([*argv, "--methods", "bicubic", "--out", str(out), "-q"]) == 0
    assert "cropped from 95x94 to 93x93" in capsys.readouterr().err
    table = (out / "results.md").read_text()
    assert "| bicubic |" in table and "on the image, borders included" in table
    assert (out / "figure.png").is_file() and (out / "report.html").is_file()


def test_a_valid_blurs_truth_is_cropped_to_the_measurements_field_of_view(tmp_path):
    from rimkit.degrade import degrade

    truth = clean()[:60, :70]
    blurred = degrade(truth, "blur", sigma=2.55, kernel="gaussian:1.6", boundary="valid", seed=0)
    y = blurred.measurement  # 11 x 11 kernel: 5 pixels of x past each edge
    assert y.shape == (50, 60)
    options = {"sigma": 2.55, "kernel": "gaussian:1.6", "boundary": "valid"}
    with pytest.warns(UserWarning, match=r"cropped from 60x70 to the valid blur's field of view"):
        (result,) = compare(y, "blur", ["tv"], truth=truth, **options)
    assert result.image.shape == (50, 60)
    assert result.psnr == pytest.approx(psnr(result.image, truth[5:55, 5:65]), abs=0.02)
    with pytest.raises(ValueError, match=r"the clean image is \(60, 71\)"):  # not y's source
        compare(y, "blur", ["tv"], truth=clean()[:60, :71], **options)


def test_write_comparison_writes_each_result_a_figure_and_a_report(tmp_path):
    results = compare(noisy(), "denoise", ["tv", "cg-tikhonov"], sigma=25, truth=clean())
    out = tmp_path / "cmp"
    written = write_comparison(out, results, shown_measurement(noisy(), "denoise"), clean())
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "tv.png")), np.round(np.clip(results[0].image, 0, 1) * 255)
    )
    figure = Image.open(io.BytesIO((out / "figure.png").read_bytes()))
    assert figure.width > 4 * 96  # input, two results and the clean image side by side
    table = (out / "results.md").read_text()
    assert "| tv |" in table and "PSNR (dB)" in table and f"{results[0].psnr:.2f}" in table
    assert "<html" in (out / "report.html").read_text().lower()
    assert set(written) == {"tv", "cg-tikhonov", "figure", "results", "report"}
    with pytest.raises(ValueError, match="not empty; pass --force"):
        write_comparison(out, results)


def test_cli_compare_writes_the_comparison_and_refuses_bad_input(tmp_path, capsys):
    y, x = tmp_path / "noisy.npy", tmp_path / "clean.png"
    np.save(y, noisy())
    Image.fromarray(np.round(clean() * 255).astype(np.uint8)).save(x)
    out = tmp_path / "cmp"
    argv = ["compare", str(y), "--task", "denoise", "--methods", tiny_model(tmp_path), "tv",
            "--truth", str(x), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "noise level estimated from the input: sigma" in printed and "| tv |" in printed
    own = psnr(np.round(noisy() * 255).clip(0, 255) / 255, clean())  # the 8-bit protocol
    assert f"| the measurement itself | - | {own:.2f} |" in printed
    files = sorted(p.name for p in out.iterdir())
    assert "tv.png" in files and any(f.endswith("-tiny.safetensors.png") for f in files)
    assert main(argv) == 2 and "pass --force" in capsys.readouterr().err
    bad = ["compare", str(y), "--task", "denoise", "--methods", "no-such-model", "--out",
           str(tmp_path / "c2")]  # fmt: skip
    assert main(bad) == 2 and "no-such-model" in capsys.readouterr().err
    sr = ["compare", str(y), "--task", "sr", "--scale", "2", "--methods", "bicubic", "--out",
          str(tmp_path / "c3"), "--truth", str(x), "-q"]  # fmt: skip
    assert main(sr) == 2 and "the clean image is (96, 96)" in capsys.readouterr().err


def test_cli_compare_runs_both_shipped_mri_models_by_default(tmp_path, capsys):
    import torch

    from rimkit.operators import CartesianMRI, variable_density_mask

    g = torch.Generator().manual_seed(0)
    mask = variable_density_mask((32, 32), 3.0, generator=g)
    kspace = CartesianMRI(mask)(torch.from_numpy(clean()[:32, :32])[None, None].double())
    np.save(tmp_path / "k.npy", kspace[0, 0].numpy().astype(np.complex64))
    argv = ["compare", str(tmp_path / "k.npy"), "--task", "mri", "--out", str(tmp_path / "cmp"),
            "-q"]  # fmt: skip
    assert main(argv) == 0
    names = sorted(p.stem for p in (tmp_path / "cmp").iterdir() if p.suffix == ".png")
    assert {"mri", "mri-measured", "zero-filled"} <= set(names)


def test_the_measurement_is_scored_only_on_the_clean_image_grid():
    x = clean()
    assert measurement_scores(noisy(), x, "denoise")[0] == pytest.approx(
        psnr(np.round(noisy() * 255).clip(0, 255) / 255, x), abs=1e-9
    )
    assert measurement_scores(x[::2, ::2], x, "sr") is None
    assert measurement_scores(noisy(), None, "denoise") is None
    assert measurement_scores(noisy()[:90], x, "blur") is None  # a valid blur is smaller


def test_an_unknown_method_is_refused_before_any_runs_with_what_is_known(monkeypatch):
    import numpy as np

    from rimkit import compare as comparing

    ran = []
    monkeypatch.setattr(comparing, "restore", lambda *a, **k: ran.append(a))
    with pytest.raises(ValueError, match=r"unknown method 'foo': not a baseline \(.*\btv\b.*\), a "
                       r"shipped model \(.*denoise-gray"):  # fmt: skip
        comparing.compare(np.full((16, 16), 0.5), "denoise", ["tv", "foo"], sigma=25)
    assert ran == []
