"""Patch sets, deterministic sampling, and task distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rimkit.data import ImageFolder, PatchSampler, PatchSet, dihedral, seeded, validation_patches
from rimkit.tasks import (
    DenoiseTask,
    InpaintTask,
    LensingTask,
    MRITask,
    ProjectionTask,
    SuperResolutionTask,
    TaskMixture,
)


def _patches(count=3, size=8, stride=4):
    images = [np.arange(20 * 24, dtype=np.uint8).reshape(1, 20, 24) + i for i in range(count)]
    return PatchSet(images, size=size, stride=stride)


def test_patch_positions_cover_every_window_at_the_stride():
    patches = _patches()
    assert len(patches) == 3 * 4 * 5  # tops 0..12 step 4, lefts 0..16 step 4
    p = patches.patch(5)
    i, top, left = patches.positions[5]
    window = torch.from_numpy(patches.images[i][:, top : top + 8, left : left + 8])
    assert torch.equal(p, window.float() / 255)  # uint8 images: 8-bit levels


def test_one_epoch_visits_every_patch_once_and_batches_are_reproducible():
    patches = _patches()
    sampler = PatchSampler(patches, batch_size=6, seed=3, augment=False)
    seen = torch.cat([sampler.batch(i) for i in range(10)])  # 60 patches = one epoch
    all_patches = patches.gather(torch.arange(len(patches)))
    assert sorted(map(_key, seen)) == sorted(map(_key, all_patches))
    again = PatchSampler(patches, batch_size=6, seed=3, augment=False)
    assert torch.equal(again.batch(7), sampler.batch(7))  # no hidden state
    assert not torch.equal(PatchSampler(patches, 6, seed=4, augment=False).batch(7), seen[42:48])


def _key(t: torch.Tensor) -> bytes:
    return t.numpy().tobytes()


def test_ranks_get_disjoint_shards_of_a_global_batch():
    patches = _patches()
    single = PatchSampler(patches, batch_size=4, seed=0, augment=False)
    rank0 = PatchSampler(patches, batch_size=2, seed=0, augment=False, rank=0, world=2)
    rank1 = PatchSampler(patches, batch_size=2, seed=0, augment=False, rank=1, world=2)
    torch.testing.assert_close(torch.cat([rank0.batch(3), rank1.batch(3)]), single.batch(3))


def test_dihedral_transforms_are_the_eight_distinct_symmetries():
    patch = torch.arange(9.0).reshape(1, 3, 3)
    results = {dihedral(patch, t).numpy().tobytes() for t in range(8)}
    assert len(results) == 8


def test_augmentation_changes_patches_but_keeps_their_pixels():
    patches = _patches()
    plain = PatchSampler(patches, 6, seed=1, augment=False).batch(2)
    augmented = PatchSampler(patches, 6, seed=1, augment=True).batch(2)
    assert not torch.equal(plain, augmented)
    for a, b in zip(plain, augmented, strict=True):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)


def test_validation_patches_are_fixed_and_distinct():
    patches = _patches()
    a, b = validation_patches(patches, 10, seed=0), validation_patches(patches, 10, seed=0)
    assert torch.equal(a, b) and len({_key(p) for p in a}) == 10


def test_image_folder_caches_uint8_and_rejects_bad_folders(image_folder, tmp_path):
    folder = ImageFolder(image_folder)
    assert len(folder) == 6 and folder.images[0].dtype == np.uint8 and folder.channels == 1
    assert ImageFolder(image_folder, gray=False).channels == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere")


def test_patch_larger_than_images_is_named():
    with pytest.raises(ValueError, match="larger than"):
        PatchSet([np.zeros((1, 10, 12), np.uint8)], size=16)


TASKS = [
    DenoiseTask(sigma=(5, 50)),
    SuperResolutionTask(scales=(2, 3, 4), sigma=(0, 2)),
    InpaintTask(fraction=(0.2, 0.8), sigma=(0, 5)),
    ProjectionTask(ratio=(0.2, 0.4), sigma=(0, 5)),
    MRITask(acceleration=(1.5, 5.2)),
    MRITask(mask="points"),
    LensingTask(sigma=(0, 5)),
    LensingTask(psf=1.0, axis_ratio=(0.3, 0.9)),
]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: type(t).__name__)
def test_tasks_are_deterministic_and_consistent(task):
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    a = task.sample(x, seeded(1, 2))
    b = task.sample(x, seeded(1, 2))
    assert torch.equal(a.y, b.y) and torch.equal(a.sigma, b.sigma) and torch.equal(a.x0, b.x0)
    assert a.x0.shape == a.target.shape and a.sigma.shape == (3,)
    # the likelihood of the noiseless measurement of the target is stationary at the target
    clean = a.operator(a.target)
    from rimkit.likelihood import GaussianLikelihood

    grad = GaussianLikelihood(a.operator, clean, a.sigma).grad(a.target, 1e-3)
    assert grad.abs().max() < 1e-3


def test_denoise_sigma_is_drawn_per_sample_in_range():
    task = DenoiseTask(sigma=(10, 20))
    m = task.sample(torch.rand(256, 1, 32, 32), seeded(0))
    assert m.sigma.min() >= 10 / 255 and m.sigma.max() <= 20 / 255
    assert m.sigma.std() > 0.008
    per_sample_std = (m.y - m.target).flatten(1).std(dim=1)
    assert torch.corrcoef(torch.stack([per_sample_std, m.sigma]))[0, 1] > 0.9


def test_projection_sigma_in_image_units_scales_by_the_row_norm():
    x = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    task = dict(kinds=("bernoulli",), ratio=(0.25, 0.25), sigma=(5, 50))
    per_measurement = ProjectionTask(**task).sample(x, seeded(3))
    image = ProjectionTask(**task, sigma_units="image").sample(x, seeded(3))
    # same draws; rows of +-1/sqrt(m) have norm sqrt(n / m) = 2
    torch.testing.assert_close(image.sigma, 2 * per_measurement.sigma)
    noise = (image.y - image.operator(image.target)).flatten(1).std(dim=1)
    assert torch.corrcoef(torch.stack([noise, image.sigma]))[0, 1] > 0.9
    assert (noise / image.sigma).mean().item() == pytest.approx(1.0, abs=0.05)


def test_mixture_draws_tasks_by_weight():
    mix = TaskMixture([DenoiseTask(), SuperResolutionTask(scales=(2,))], [3.0, 1.0])
    names = [mix.sample(torch.rand(1, 1, 8, 8), seeded(0, i)).name for i in range(400)]
    assert 0.65 < names.count("denoise") / 400 < 0.85


def test_mri_task_hits_the_acceleration_range():
    m = MRITask(acceleration=(2.0, 4.0)).sample(torch.rand(8, 1, 32, 32), seeded(5))
    mask = m.operator.op.mask[:, 0, 0, :]  # columns
    rates = 32 / mask.sum(dim=1)
    assert rates.min() >= 32 / 16.5 and rates.max() <= 32 / 7.5


def test_lensing_task_draws_a_lens_per_sample_within_its_ranges():
    task = LensingTask(einstein_radius=(0.4, 0.5), axis_ratio=(0.6, 0.8), sigma=(0, 0))
    x = torch.rand(16, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    m = task.sample(x, seeded(4))
    assert m.name == "lensing" and m.x0.unique().tolist() == [0.5]
    images = m.operator(torch.ones_like(x))  # which image pixels see the source at all
    assert len({tuple(image.flatten().tolist()) for image in images}) == 16
    x_img = torch.linspace(-1, 1, 25)[:-1] + 1 / 24  # pixel centres over image_fov 2
    radius = torch.hypot(*torch.meshgrid(x_img, x_img, indexing="ij"))
    # pixels near the Einstein ring see the centre of the source, whatever the lens's shape
    ring = (radius > 0.42) & (radius < 0.48)
    assert images[:, 0][:, ring].min() > 0.99


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DenoiseTask(sigma=(30, 10)), "sigma"),
        (lambda: InpaintTask(fraction=(0.5, 1.0)), "fraction"),
        (lambda: ProjectionTask(kinds=("uniform",)), "known: gaussian"),
        (lambda: ProjectionTask(sigma_units="pixels"), "known: measurement, image"),
        (lambda: MRITask(acceleration=(0.5, 2)), "acceleration"),
        (lambda: MRITask(mask="radial"), "known: columns"),
        (lambda: SuperResolutionTask(scales=(2.5,)), "integers"),
        (lambda: LensingTask(axis_ratio=(0.0, 1.0)), "axis_ratio"),
        (lambda: LensingTask(einstein_radius=(0.6, 0.3)), "einstein_radius"),
        (lambda: LensingTask(image_fov=0.0), "image_fov must be > 0"),
        (lambda: LensingTask(psf=-1.0), "psf must be >= 0"),
        (lambda: TaskMixture([DenoiseTask()], [-1.0]), "non-negative"),
    ],
)
def test_bad_task_parameters_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()
