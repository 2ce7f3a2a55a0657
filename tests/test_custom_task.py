"""A task of one's own (rimkit.tasks.register_task): trained, resumed and loaded like a built-in
one, for a linear forward model and for a non-linear one through autograd."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pytest
import torch

from rimkit.likelihood import AutogradLikelihood
from rimkit.operators import Identity, LinearOperator
from rimkit.reconstruct import RIMReconstructor
from rimkit.tasks import TASKS, Measurement, register_task
from rimkit.train import ExperimentConfig, train
from rimkit.zoo import load_model


class EveryOtherColumn(LinearOperator):
    def forward(self, x):  # (B, C, H, W) -> (B, C, H, W / 2)
        return x[..., ::2]

    def adjoint(self, y):
        return torch.stack([y, torch.zeros_like(y)], dim=-1).flatten(-2)


@dataclass
class ColumnsTask:
    sigma: tuple[float, float] = (0.0, 10.0)

    def sample(self, x, generator):
        op = EveryOtherColumn()
        sigma = torch.empty(len(x), dtype=torch.float64).uniform_(*self.sigma, generator=generator)
        sigma = (sigma / 255).to(x.dtype)  # (B,)
        y = op(x) + sigma.view(-1, 1, 1, 1) * torch.randn(
            op(x).shape, generator=generator, dtype=x.dtype
        )
        return Measurement(op, y, sigma, x, op.adjoint(y), "columns")


class Squared:
    """A non-linear forward model: y = x^2 (pixelwise)."""

    def __call__(self, x):
        return x * x


@dataclass
class SquaredMeasurement(Measurement):
    def likelihood(self):
        return AutogradLikelihood(self.operator, self.y, self.sigma)


@dataclass
class SquaredTask:
    sigma: tuple[float, float] = (1.0, 5.0)

    def sample(self, x, generator):
        sigma = torch.empty(len(x), dtype=torch.float64).uniform_(*self.sigma, generator=generator)
        sigma = (sigma / 255).to(x.dtype)
        y = x * x + sigma.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=generator)
        return SquaredMeasurement(Squared(), y, sigma, x, torch.full_like(x, 0.5), "squared")


@pytest.fixture
def registered():
    names = {"columns": ColumnsTask, "squared": SquaredTask}
    for name, cls in names.items():
        register_task(name)(cls)
    yield
    for name in names:
        TASKS.pop(name, None)


def config(folder, task: dict, iterations: int = 4) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {
            "model": {"features": 4, "hidden": 4, "train_steps": 2},
            "data": {"train": str(folder), "val_images": 2, "val_patches": 8, "patch_size": 16},
            "tasks": [task],
            "optim": {"iterations": iterations, "batch_size": 4, "val_every": 2},
        }
    )


def test_a_registered_linear_task_trains_resumes_and_loads(image_folder, tmp_path, registered):
    cfg = config(image_folder, {"name": "columns", "sigma": [0, 5]})
    assert cfg.tasks == [{"name": "columns", "sigma": [0, 5]}]
    whole = train(cfg, tmp_path / "whole", progress=False)
    train(cfg, tmp_path / "halves", stop_after=2, progress=False)
    resumed = train(cfg, tmp_path / "halves", resume=True, progress=False)
    assert resumed["iteration"] == whole["iteration"] == 4
    assert resumed["val_psnr_final"] == pytest.approx(whole["val_psnr_final"], abs=1e-4)

    TASKS.pop("columns")  # loading the weights needs no registration
    loaded = load_model(str(tmp_path / "whole"))
    assert loaded.config["tasks"] == [{"name": "columns", "sigma": [0, 5]}]
    assert loaded.model.train_steps == 2

    cols = EveryOtherColumn()
    x = torch.rand(1, 1, 16, 16)
    rim = RIMReconstructor(loaded)
    with pytest.warns(UserWarning, match=r"no start is known for EveryOtherColumn.*as x0"):
        rim(cols(x), cols, 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # given its start, or on an operator with one: no note
        rim(cols(x), cols, 0.01, x0=cols.adjoint(cols(x)))
        rim(x, Identity(), 0.01)


def test_a_registered_non_linear_task_trains_through_autograd(image_folder, tmp_path, registered):
    meta = train(config(image_folder, {"name": "squared"}), tmp_path / "run", progress=False)
    assert meta["iteration"] == 4 and len(meta["val_psnr_per_step"]) == 2
    assert all(score == score for score in meta["val_psnr_per_step"])  # finite, not NaN


def test_registration_refuses_a_taken_name_and_a_class_without_sample(registered):
    with pytest.raises(ValueError, match=r"task name 'denoise' is taken \(by DenoiseTask\)"):
        register_task("denoise")(ColumnsTask)
    register_task("columns")(ColumnsTask)  # the same class again is fine
    again = dataclass(type("ColumnsTask", (), {"sample": ColumnsTask.sample}))  # re-defined
    again.__module__, again.__qualname__ = ColumnsTask.__module__, ColumnsTask.__qualname__
    assert register_task("columns")(again) is again and TASKS["columns"] is again
    with pytest.raises(TypeError, match="must be a dataclass with a sample"):
        register_task("plain")(EveryOtherColumn)
    with pytest.raises(ValueError, match=r"unknown task 'colums'.*register_task"):
        ExperimentConfig.from_dict({"tasks": [{"name": "colums"}]})


def test_a_sample_that_returns_no_measurement_is_named(image_folder, tmp_path, registered):
    @dataclass
    class TupleTask:
        def sample(self, x, generator):
            return x, x

    register_task("tuple")(TupleTask)
    try:
        with pytest.raises(TypeError, match=r"TupleTask\.sample returned tuple; a task's sample"):
            train(config(image_folder, {"name": "tuple"}), tmp_path / "run", progress=False)
    finally:
        TASKS.pop("tuple")


def test_what_a_task_of_ones_own_returns_is_checked_where_it_is_drawn():
    from rimkit.tasks import TaskMixture

    x, gen = torch.rand(2, 1, 8, 8), torch.Generator().manual_seed(0)

    @dataclass
    class Float64Noise(ColumnsTask):
        def sample(self, x, generator):
            good = ColumnsTask.sample(self, x, generator)
            sigma = good.sigma.double()  # the noise drawn in float64 makes y and x0 float64
            y = good.y.double()
            return Measurement(good.operator, y, sigma, x, good.operator.adjoint(y), "f64")

    @dataclass
    class HalfStart(ColumnsTask):
        def sample(self, x, generator):
            good = ColumnsTask.sample(self, x, generator)
            return Measurement(good.operator, good.y, good.sigma, x, good.y, "half")

    with pytest.raises(ValueError, match=r"Float64Noise.sample.*x0 of torch.float64 for patches"):
        TaskMixture([Float64Noise()]).sample(x, gen)
    with pytest.raises(ValueError, match=r"x0 \(2, 1, 8, 4\) and target \(2, 1, 8, 8\)"):
        TaskMixture([HalfStart()]).sample(x, gen)
    assert TaskMixture([ColumnsTask()]).sample(x, gen).name == "columns"

    @dataclass
    class MapNoNoStart(ColumnsTask):  # a noise map per pixel and no start: both allowed
        def sample(self, x, generator):
            good = ColumnsTask.sample(self, x, generator)
            noise_map = 0.01 + 0.05 * good.y
            return Measurement(good.operator, good.y, noise_map, x, None, "map")

    assert TaskMixture([MapNoNoStart()]).sample(x, gen).x0 is None


def test_a_task_that_draws_sigma_on_the_0_255_scale_gets_a_note():
    from rimkit.tasks import TaskMixture

    x, gen = torch.rand(2, 1, 8, 8), torch.Generator().manual_seed(0)

    @dataclass
    class NoDivision(ColumnsTask):  # sigma 5-10 used as is on patches in [0, 1]
        def sample(self, x, generator):
            good = ColumnsTask.sample(self, x, generator)
            sigma = good.sigma * 255
            y = good.operator(x) + sigma.view(-1, 1, 1, 1) * torch.randn(good.y.shape)
            return Measurement(good.operator, y, sigma, x, good.operator.adjoint(y), "x255")

    with pytest.warns(UserWarning, match=r"values A\(target\) from NoDivision lie on the image"):
        TaskMixture([NoDivision(sigma=(5.0, 10.0))]).sample(x, gen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskMixture([ColumnsTask(sigma=(5.0, 10.0))]).sample(x, gen)


def test_a_large_norm_task_with_sigma_above_1_in_its_own_units_gets_no_note():
    from rimkit.tasks import TaskMixture

    x, gen = torch.rand(2, 1, 8, 8), torch.Generator().manual_seed(0)

    class Sums(EveryOtherColumn):  # sums of 8 rows: y up to 8
        def forward(self, x):
            return x.sum(-2, keepdim=True)

        def adjoint(self, y):
            return y.expand(*y.shape[:-2], 8, y.shape[-1])

    @dataclass
    class SumTask:
        def sample(self, x, generator):
            op, sigma = Sums(), torch.full((len(x),), 2.0)  # 2 in units of sums up to 8
            y = op(x) + 2.0 * torch.randn(op(x).shape, generator=generator)
            return Measurement(op, y, sigma, x, torch.full_like(x, 0.5), "sums")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskMixture([SumTask()]).sample(x, gen)
