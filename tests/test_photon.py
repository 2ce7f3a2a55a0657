"""Photon-counting noise: the generalised Anscombe transform, its unbiased inverse, and
denoising photon counts through it (API and command line). Generated images only."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from rimkit.cli import main
from rimkit.photon import PhotonNoise
from rimkit.pipeline import restore


def spots(n: int = 64, seed: int = 0) -> np.ndarray:
    """A fluorescence-like scene in [0, 1]: bright Gaussian spots on a dark field."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    image = np.zeros((n, n))
    for _ in range(8):
        cy, cx, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(2, 6)
        image += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return image / image.max()


def detector_counts(photons: np.ndarray, detector: PhotonNoise, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, detector.read_noise, photons.shape)
    return detector.gain * rng.poisson(photons) + noise + detector.offset


@pytest.mark.parametrize("mean", [5.0, 20.0, 200.0])
def test_the_transform_makes_the_noise_unit_and_its_inverse_is_unbiased(mean):
    detector = PhotonNoise(gain=2.5, read_noise=3.0, offset=100.0)
    z = detector_counts(np.full(200_000, mean), detector)
    stabilised = detector.stabilise(z)
    assert stabilised.std() == pytest.approx(1.0, abs=0.05)
    back = detector.unstabilise(np.array([stabilised.mean()]))[0]
    assert back == pytest.approx(2.5 * mean + 100.0, rel=0.01)


def test_the_unbiased_inverse_holds_where_the_algebraic_one_is_biased():
    detector = PhotonNoise()
    z = detector_counts(np.full(200_000, 2.0), detector)
    mean = detector.stabilise(z).mean()
    algebraic = (mean / 2) ** 2 - 3 / 8
    assert detector.unstabilise(np.array([mean]))[0] == pytest.approx(2.0, abs=0.05)
    assert abs(algebraic - 2.0) > 0.15
    assert detector.unstabilise(np.array([0.0, 1.0]))[0] == 0.0  # no photons: no counts


@pytest.mark.parametrize(
    "options, message",
    [
        ({"gain": 0.0}, "gain"),
        ({"gain": True}, "gain"),
        ({"read_noise": -1.0}, "read_noise"),
        ({"offset": float("nan")}, "offset"),
    ],
)
def test_bad_detectors_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        PhotonNoise(**options)


@pytest.fixture(scope="module")
def denoiser():
    from rimkit.zoo import load_model

    return load_model("denoise-gray").model


def test_photon_counts_denoise_better_through_the_transform(denoiser):
    detector = PhotonNoise(gain=2.0, read_noise=2.0, offset=100.0)
    photons = 20 * spots()
    z = detector_counts(photons, detector)
    truth = 2.0 * photons + 100.0

    def psnr(estimate: np.ndarray) -> float:
        return float(10 * np.log10(40.0**2 / np.mean((estimate - truth) ** 2)))

    plain = restore(z, "denoise", denoiser, units="data")  # one sigma, estimated
    counted = restore(z, "denoise", denoiser, units="data", photons=detector)
    assert psnr(counted.image) > psnr(plain.image) + 2.0 > psnr(z) + 2.0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"task": "blur"}, "denoising only"),
        ({"sigma": 5.0}, "leave sigma out"),
        ({"units": "image"}, "units='data'"),
        ({"background": "auto"}, "offset"),
    ],
)
def test_what_photon_noise_leaves_no_room_for_is_refused(options, message):
    options = {"task": "denoise", "units": "data", **options}
    with pytest.raises(ValueError, match=message):
        restore(np.ones((16, 16)), model=None, baseline="tv", photons=PhotonNoise(), **options)


def test_cli_denoises_photon_counts_and_refuses_stray_options(tmp_path, capsys):
    detector = PhotonNoise(gain=2.0, read_noise=2.0, offset=100.0)
    z = detector_counts(20 * spots(48), detector)
    tifffile.imwrite(tmp_path / "z.tif", np.clip(np.round(z), 0, None).astype(np.uint16))
    argv = ["reconstruct", str(tmp_path / "z.tif"), str(tmp_path / "o.tif"), "--task", "denoise"]
    poisson = ["--noise", "poisson", "--gain", "2", "--read-noise", "2", "--offset", "100"]
    assert main([*argv, *poisson, "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "in the input's counts" in out and "estimated" not in out
    assert 90 < tifffile.imread(tmp_path / "o.tif").mean() < 140  # counts about the offset
    assert main([*argv[:-1], "blur", *poisson, "--force"]) == 2
    assert "--task denoise only" in capsys.readouterr().err
    assert main([*argv, "--gain", "2", "--force"]) == 2
    assert "describe --noise poisson" in capsys.readouterr().err


@pytest.mark.parametrize(
    "gain, read_noise, peak", [(2.0, 2.0, 30), (1.0, 5.0, 100), (0.5, 3.0, 300), (4.0, 1.0, 10)]
)
def test_the_detector_is_read_off_its_counts(gain, read_noise, peak):
    from skimage import data
    from skimage.transform import resize

    scene = resize(data.camera().astype(float), (256, 256), anti_aliasing=True)
    scene = (scene - scene.min()) / (scene.max() - scene.min())
    z = detector_counts(peak * scene, PhotonNoise(gain, read_noise, 100.0), seed=2)
    found = PhotonNoise.estimate(z, offset=100.0)
    assert found.gain == pytest.approx(gain, rel=0.15)
    assert found.read_noise == pytest.approx(read_noise, abs=1.2)  # the less certain of the two


def test_noise_that_does_not_grow_with_the_counts_is_no_photon_noise():
    ramp = np.outer(np.linspace(0, 200, 128), np.ones(128))
    shrinking = ramp + np.random.default_rng(0).normal(0, 1, ramp.shape) * (10 - ramp / 25)
    with pytest.raises(ValueError, match="does not grow with the counts"):
        PhotonNoise.estimate(shrinking)


def test_cli_estimates_the_detector_where_asked(tmp_path, capsys):
    detector = PhotonNoise(gain=2.0, read_noise=2.0, offset=100.0)
    z = detector_counts(30 * spots(96), detector)
    tifffile.imwrite(tmp_path / "z.tif", np.clip(np.round(z), 0, None).astype(np.uint16))
    argv = ["reconstruct", str(tmp_path / "z.tif"), str(tmp_path / "o.tif"), "--task", "denoise"]
    argv += ["--noise", "poisson", "--gain", "auto", "--offset", "100", "--threads", "1"]
    assert main(argv) == 0
    assert "detector estimated from the input: gain" in capsys.readouterr().out
    assert main([*argv, "--read-noise", "2", "--force"]) == 2
    assert "estimates the read noise too" in capsys.readouterr().err


def test_the_estimate_leaves_out_masked_and_saturated_pixels_and_refuses_what_it_cannot_read():
    from skimage import data
    from skimage.transform import resize

    scene = resize(data.camera().astype(float), (128, 128), anti_aliasing=True) / 255
    z = detector_counts(30 * scene, PhotonNoise(2.0, 2.0, 100.0), seed=3)
    hot = np.random.default_rng(4).random(z.shape) < 0.01
    z_hot = np.where(hot, z + 3000 * np.random.default_rng(5).random(z.shape), z)
    found = PhotonNoise.estimate(z_hot, offset=100.0, mask=~hot)
    assert found.gain == pytest.approx(2.0, rel=0.2)
    saturated = PhotonNoise.estimate(np.minimum(z, np.percentile(z, 95)), offset=100.0)
    assert saturated.gain == pytest.approx(2.0, rel=0.2)
    with pytest.raises(ValueError, match="below the offset"):
        PhotonNoise.estimate(z, offset=10_000.0)
    flat = detector_counts(np.full((64, 64), 500.0), PhotonNoise(2.0, 2.0, 100.0))
    with pytest.raises(ValueError, match="too narrow a range of levels"):
        PhotonNoise.estimate(flat, offset=100.0)
