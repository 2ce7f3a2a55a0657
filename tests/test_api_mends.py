"""Mends from an audit of the Python API: configs built from the dataclasses are checked as
YAML ones are, train() keeps an existing run, load_model reads EMA checkpoints and the newest
weights of a resumed run, scale notes, RIMReconstructor inputs, image shapes without x0, the
initial estimate of operator subclasses, and forward models that are not differentiable."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rimkit.likelihood import AutogradLikelihood, GaussianLikelihood
from rimkit.models import RIMConfig, build_rim
from rimkit.operators import BicubicDownsample, Blur, Identity, Inpainting, gaussian_kernel
from rimkit.reconstruct import RIMReconstructor, initial_estimate
from rimkit.train import ExperimentConfig, train
from rimkit.train.config import DataConfig, OptimConfig
from rimkit.train.loop import check_data, weights_digest
from rimkit.zoo import LoadedModel, load_model

TINY_MODEL = {"features": 4, "hidden": 4, "train_steps": 2}


def _recipe(folder, **optim) -> dict:
    return {
        "model": dict(TINY_MODEL),
        "data": {"train": str(folder), "val_images": 2, "val_patches": 8, "patch_size": 16},
        "tasks": [{"name": "denoise", "sigma": [5, 50]}],
        "optim": {"iterations": 4, "batch_size": 4, "val_every": 2, "checkpoint_every": 2} | optim,
    }


def _config(folder, **optim) -> ExperimentConfig:
    return ExperimentConfig.from_dict(_recipe(folder, **optim))


def _direct(folder, **optim) -> ExperimentConfig:
    """A config built from the dataclasses, as from Python, not from a dict."""
    return ExperimentConfig(
        model=RIMConfig(**TINY_MODEL),
        data=DataConfig(train=folder, val_images=2, val_patches=8, patch_size=16),
        tasks=[{"name": "denoise", "sigma": [5, 50]}],
        optim=OptimConfig(**({"iterations": 2, "batch_size": 4} | optim)),
    )


# 1. configs built from the dataclasses are checked; paths may be Paths


@pytest.mark.parametrize(
    ("optim", "message"),
    [
        ({"schedule": "cosin"}, r"unknown optim\.schedule 'cosin'"),
        ({"precision": "fp16"}, r"unknown optim\.precision 'fp16'"),
        ({"ema": 1.0}, r"optim\.ema must be in \[0, 1\)"),
        ({"iterations": 0}, r"optim\.iterations must be >= 1, got 0"),
        ({"lr": -1.0}, r"optim\.lr must be a finite number > 0, got -1"),
        ({"iterations": "10"}, r"optim\.iterations must be an integer"),
    ],
)
def test_train_checks_a_config_built_from_the_dataclasses(image_folder, tmp_path, optim, message):
    with pytest.raises(ValueError, match=message):
        train(_direct(image_folder, **optim), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_data_paths_may_be_paths(image_folder):
    cfg = _direct(Path(image_folder))
    assert cfg.data.train == str(image_folder)
    check_data(cfg)  # used to fail: 'PosixPath' object is not iterable
    recipe = _recipe(image_folder)
    recipe["data"] |= {"train": [Path(image_folder)], "root": Path(image_folder)}
    data = ExperimentConfig.from_dict(recipe).data
    assert data.train == (str(image_folder),) and data.root == str(image_folder)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("model", "train_steps", 0, r"model: train_steps must be an int >= 1, got 0"),
        ("model", "features", 0, r"model: features must be a positive int, got 0"),
        ("model", "hidden", -1, r"model: hidden must be a positive int, got -1"),
        ("model", "variant", "rym", r"model: unknown variant 'rym'; known: rim"),
        ("model", "cell", "resto", r"model: unknown cell 'resto'; known: restoration"),
        ("model", "link", "sigmod", r"model: unknown link 'sigmod'; known: sigmoid"),
        ("data", "patch_size", 0, r"data\.patch_size must be >= 1, got 0"),
    ],
)
def test_model_and_data_mistakes_are_named_up_front(image_folder, section, key, value, message):
    recipe = _recipe(image_folder)
    recipe[section][key] = value
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.from_dict(recipe)


# 2. train() keeps an existing run unless told to resume or to start over


def test_train_refuses_a_folder_that_holds_a_run(image_folder, tmp_path):
    cfg = _config(image_folder, iterations=2)
    out = tmp_path / "run"
    train(cfg, out, progress=False)
    before = (out / "log.csv").read_text()
    with pytest.raises(ValueError, match=r"'.*run' holds a run .*resume=True.*force=True"):
        train(cfg, out, progress=False)
    assert (out / "log.csv").read_text() == before and (out / "model.safetensors").is_file()
    assert train(cfg, out, stop_after=1, progress=False, force=True)["iteration"] == 1
    assert not (out / "model.safetensors").exists()  # the old run's files went


# 3. load_model reads the checkpoints of a run with optim.ema: the weights it ships


def test_load_model_reads_the_weight_average_of_an_ema_run(image_folder, tmp_path):
    out = tmp_path / "ema"
    meta = train(_config(image_folder, ema=0.5), out, stop_after=2, progress=False)
    assert not (out / "model.safetensors").exists()
    loaded = load_model(out / "last.safetensors")  # used to fail: unexpected ['ema/...']
    assert weights_digest(loaded.model) == meta["weights_sha256"]  # the average, not the model
    only_last = tmp_path / "only-last"
    only_last.mkdir()
    shutil.copy(out / "last.safetensors", only_last)
    assert weights_digest(load_model(only_last).model) == meta["weights_sha256"]
    done = train(_config(image_folder, ema=0.5), out, resume=True, progress=False)
    shipped = weights_digest(load_model(out / "model.safetensors").model)
    assert weights_digest(load_model(out / "last.safetensors").model) == shipped
    assert shipped == done["weights_sha256"]


# 4. a resumed run drops its stale final weights


def test_a_resumed_run_drops_its_old_final_weights(image_folder, tmp_path):
    out = tmp_path / "run"
    first = train(_config(image_folder, iterations=4), out, progress=False)
    longer = _config(image_folder, iterations=8)
    train(longer, out, resume=True, stop_after=6, progress=False)
    assert not (out / "model.safetensors").exists()  # it held iteration 4's weights
    assert load_model(out).source.name == "best.safetensors"  # as any interrupted run
    done = train(longer, out, resume=True, progress=False)
    loaded = load_model(out)
    assert loaded.source.name == "model.safetensors"
    assert weights_digest(loaded.model) == done["weights_sha256"] != first["weights_sha256"]
    again = train(longer, out, resume=True, progress=False)  # nothing left to do: what it ended
    assert (again["iteration"], again["weights_sha256"]) == (8, done["weights_sha256"])
    assert (out / "model.safetensors").is_file()  # a finished run keeps its weights


# 5. sigma on the wrong scale gets a note on the direct path and in task entries


def test_a_likelihood_notes_sigma_on_the_0_255_scale():
    y = torch.rand(1, 1, 8, 8)
    for make in (
        lambda: GaussianLikelihood(Identity(), y, 25),
        lambda: AutogradLikelihood(lambda x: x, y, 25),
    ):
        with pytest.warns(UserWarning, match=r"sigma 25 is in the units of y.*25 / 255"):
            make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GaussianLikelihood(Identity(), y, 25 / 255)
        GaussianLikelihood(Identity(), y * 255, 25)  # data on the 0-255 scale


def test_rim_reconstructor_notes_the_scale_once():
    rim = build_rim(features=4, hidden=4, train_steps=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RIMReconstructor(rim)(torch.rand(1, 1, 8, 8), Identity(), 25)
    notes = [w for w in caught if "units of y" in str(w.message)]
    assert len(notes) == 1


def test_a_task_sigma_on_the_0_1_scale_gets_a_note(image_folder):
    recipe = _recipe(image_folder)
    recipe["tasks"] = [{"name": "denoise", "sigma": [0.01, 0.1]}]
    with pytest.warns(UserWarning, match=r"DenoiseTask takes sigma on the 0-255 scale.*0\.1 looks"):
        ExperimentConfig.from_dict(recipe)
    recipe["tasks"] = [{"name": "denoise", "sigma": [0, 55]}, {"name": "sr"}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ExperimentConfig.from_dict(recipe)


# 6. RIMReconstructor takes what load_model returns, refuses a name, casts x0


def test_rim_reconstructor_takes_a_loaded_model_and_refuses_a_name():
    rim = build_rim(features=4, hidden=4, train_steps=2)
    loaded = LoadedModel(rim, {}, Path("here"))
    assert RIMReconstructor(loaded).model is rim
    with pytest.raises(
        TypeError, match=r"got str; .*RIMReconstructor\(load_model\(name\)\.model\)"
    ):
        RIMReconstructor("denoise-gray")
    y = torch.rand(1, 1, 8, 8)
    out = RIMReconstructor(rim)(y, Identity(), 0.1, x0=y.double())  # float32 model
    assert out.final.dtype == torch.float32


# 7. the image shape without x0: A^T y, or a clear request for x0 / shape


def test_without_x0_the_shape_comes_from_the_adjoint():
    rim = build_rim(features=4, hidden=4, train_steps=2)
    x = torch.rand(2, 1, 8, 8)
    sr = BicubicDownsample(2)
    assert rim(GaussianLikelihood(sr, sr(x), 0.1)).final.shape == (2, 1, 8, 8)
    pool = lambda v: F.avg_pool2d(v, 2)  # noqa: E731
    with pytest.raises(ValueError, match=r"maps images of y's shape .*give x0 or shape="):
        rim(AutogradLikelihood(pool, pool(x), 0.1))
    assert rim(AutogradLikelihood(pool, pool(x), 0.1), shape=x.shape).final.shape == x.shape
    with pytest.raises(ValueError, match=r"shape=\(2, 1, 4, 4\) and x0 of shape .* disagree"):
        rim(GaussianLikelihood(Identity(), x, 0.1), x0=x, shape=(2, 1, 4, 4))


# 8. a subclass of a built-in operator starts as that operator does


def test_operator_subclasses_start_as_their_base_class():
    class MyInpainting(Inpainting):
        pass

    class MyBlur(Blur):
        pass

    y = torch.rand(1, 1, 8, 8)
    mask = (torch.rand(1, 1, 8, 8) > 0.5).float()
    assert torch.equal(
        initial_estimate(MyInpainting(mask), y), initial_estimate(Inpainting(mask), y)
    )
    blur = MyBlur(gaussian_kernel(1.0), "valid")
    assert initial_estimate(blur, y).shape == initial_estimate(Blur(blur.kernel, "valid"), y).shape
    assert initial_estimate(blur, y).unique().numel() > 1  # not the flat 0.5


# 9. forward models that autograd cannot differentiate


@pytest.mark.parametrize(
    "forward",
    [
        lambda x: x.detach(),
        lambda x: torch.from_numpy(np.asarray(x.detach().numpy())),
        lambda x: x.clamp_(0, 1),
    ],
    ids=["detach", "numpy", "in-place"],
)
def test_a_forward_model_cut_off_from_autograd_is_named(forward):
    rim = build_rim(features=4, hidden=4, train_steps=2)
    y = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"differentiable in torch.*no \.detach\(\), \.numpy\(\)"):
        rim(AutogradLikelihood(forward, y, 0.1), x0=y * 0.5)
    with torch.no_grad(), pytest.raises(ValueError, match=r"differentiable in torch"):
        AutogradLikelihood(forward, y, 0.1).grad(y * 0.5)


def test_a_forward_model_with_zero_gradient_gets_one_note():
    rim = build_rim(features=4, hidden=4, train_steps=3)
    y = torch.rand(1, 1, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rim(AutogradLikelihood(torch.round, y, 0.1), x0=y * 0.5)
    notes = [w for w in caught if "exactly zero everywhere" in str(w.message)]
    assert len(notes) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a zero residual: nothing to note
        AutogradLikelihood(torch.round, torch.round(y), 0.1).grad(y)


def test_a_model_trained_in_ones_own_loop_is_saved_for_load_model(tmp_path):
    from rimkit.models import build_rim
    from rimkit.operators import Identity
    from rimkit.reconstruct import RIMReconstructor
    from rimkit.zoo import load_model, save_model

    torch.manual_seed(0)
    for variant in ("rim", "invertible"):
        model = build_rim(features=4, hidden=4, train_steps=2, variant=variant)
        path = save_model(tmp_path / f"{variant}.safetensors", model, [{"name": "projection"}])
        loaded = load_model(path)
        assert loaded.model.start == "flat" and loaded.config["model"]["variant"] == variant
        y = torch.rand(1, 1, 8, 8)
        model.start = "flat"  # as load_model sets it for a model of projections only
        before = RIMReconstructor(model)(y, Identity(), 0.1).estimates[-1]
        after = RIMReconstructor(loaded.model)(y, Identity(), 0.1).estimates[-1]
        assert torch.allclose(before, after)
    with pytest.raises(ValueError, match="exists; pass force=True"):
        save_model(tmp_path / "rim.safetensors", model)
    with pytest.raises(ValueError, match=r"writes a \.safetensors file"):
        save_model(tmp_path / "rim.pt", model)
    bare = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match="built by build_rim or RIMConfig"):
        save_model(tmp_path / "bare.safetensors", bare)


def test_save_model_refuses_tasks_that_are_not_recipe_entries(tmp_path):
    from rimkit.models import build_rim
    from rimkit.zoo import save_model

    model = build_rim(features=4, hidden=4, train_steps=2)
    with pytest.raises(ValueError, match=r"dicts such as \{'name': 'denoise'\}, got \['denoise'\]"):
        save_model(tmp_path / "m.safetensors", model, ["denoise"])
    assert not (tmp_path / "m.safetensors").exists()


def test_an_empty_list_of_training_folders_is_refused(image_folder):
    from rimkit.train.config import DataConfig, ExperimentConfig

    cfg = ExperimentConfig(data=DataConfig(train=[]), tasks=[{"name": "denoise"}])
    with pytest.raises(ValueError, match=r"data\.train is an empty list"):
        cfg.check()


def test_a_loaded_model_is_unwrapped_or_named_not_called():
    from rimkit.evaluate.runner import rim_method
    from rimkit.runtime import check_device
    from rimkit.zoo import load_model

    loaded = load_model("denoise-gray")
    assert rim_method(loaded).report_step == loaded.model.train_steps
    with pytest.raises(TypeError, match=r"run its \.model"):
        loaded(None)
    check_device("cpu:0")  # torch's name of the one CPU device


@pytest.mark.parametrize(
    "module, lazy",
    [
        ("rimkit", ["load_pretrained", "list_models"]),
        ("rimkit.io", ["read_mask", "write_image", "read_cfl"]),
        ("rimkit.pipeline", ["estimate_coil_maps", "NO_MAPS"]),
        ("rimkit.solvers", ["default_weight", "tuned_baseline"]),
        ("rimkit.evaluate.runner", ["run_eval", "write_outputs"]),
        ("rimkit.zoo", ["load_model", "save_model"]),
    ],
)
def test_names_imported_on_first_use_are_listed_by_dir(module, lazy):
    import importlib

    mod = importlib.import_module(module)
    names = dir(mod)
    assert set(lazy) <= set(names) and names == sorted(names)
    for name in lazy:  # each resolves to the object of the module that holds it now
        value = getattr(mod, name)
        assert callable(value) or isinstance(value, (str, tuple)), name
