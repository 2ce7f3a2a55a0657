"""fastMRI files: reading a slice and its reference, under-sampling measured k-space, and
``rimkit compare --truth FILE.h5`` scoring in fastMRI's way."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from kspace_files import fft2c, ifft2c, phantom, write_file
from rimkit.cli import main
from rimkit.compare import compare, write_comparison
from rimkit.degrade import undersample
from rimkit.fastmri import center_crop, read_fastmri

h5py = pytest.importorskip("h5py")


@pytest.fixture
def single_coil(tmp_path):
    """Three slices of single-coil k-space and their ``reconstruction_esc`` (the central crop
    of the inverse FFT), as in the fastMRI knee single-coil track."""
    images = np.stack([phantom(seed=s) for s in range(3)])  # (3, 96, 40)
    kspace = fft2c(images).astype(np.complex64)
    esc = center_crop(np.abs(ifft2c(kspace.astype(np.complex128))), (32, 32))
    path = tmp_path / "file1000.h5"
    write_file(path, kspace, reconstruction_esc=esc.astype(np.float32))
    return path, esc


def test_a_slice_of_a_single_coil_file_and_its_reference(single_coil):
    path, esc = single_coil
    piece = read_fastmri(path)
    assert (piece.index, piece.slices, piece.kspace.shape) == (1, 3, (1, 96, 40))
    assert piece.reference_name == "reconstruction_esc"
    np.testing.assert_allclose(piece.reference, esc[1], rtol=1e-6)
    assert read_fastmri(path, 0).index == 0
    np.testing.assert_allclose(read_fastmri(path, 2).reference, esc[2], rtol=1e-6)


def test_a_multi_coil_file_takes_its_root_sum_of_squares_reference(tmp_path):
    kspace = np.ones((2, 4, 16, 12), np.complex64)
    path = tmp_path / "multi.h5"
    rss = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    write_file(path, kspace, reconstruction_rss=rss, reconstruction_esc=rss + 1)
    piece = read_fastmri(path, 1)
    assert piece.kspace.shape == (4, 16, 12) and piece.kspace.dtype == np.complex128
    assert piece.reference_name == "reconstruction_rss"
    np.testing.assert_array_equal(piece.reference, rss[1])


def test_a_test_set_file_has_no_reference(tmp_path):
    path = tmp_path / "test.h5"
    write_file(path, np.ones((1, 8, 8), np.complex64), mask=np.ones(8, bool))
    piece = read_fastmri(path)
    assert piece.reference is None and piece.reference_name is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("not hdf5"), "is not an HDF5 file"),
        (lambda p: write_file_without_kspace(p), "no 'kspace' dataset (it holds image)"),
        (lambda p: write_file(p, np.ones((2, 8, 8))), "kspace is float64"),
        (lambda p: write_file(p, np.ones((8, 8), np.complex64)), "of shape (8, 8)"),
        (lambda p: write_file(p, np.ones((2, 8, 8), np.complex64)), "slice 5 is out of range"),
        (lambda p: write_file(p, np.full((6, 8, 8), np.nan, np.complex64)), "NaN or Inf"),
        (lambda p: write_file(p, np.ones((32, 32, 6), np.complex64)), "looks like slices or"),
        (lambda p: write_file(p, np.ones((64, 64, 4, 40), np.complex64)), "more coils than pixels"),
    ],
)
def test_bad_files_are_named_with_the_problem(tmp_path, make, message):
    path = tmp_path / "bad.h5"
    make(path)
    with pytest.raises(ValueError) as err:
        read_fastmri(path, 5)
    assert message in str(err.value)


def write_file_without_kspace(path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.ones((2, 2)))


def test_without_h5py_the_error_says_what_to_install(tmp_path, monkeypatch, single_coil):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ValueError, match=r"pip install 'rimkit\[fastmri\]'"):
        read_fastmri(single_coil[0])


def test_center_crop_takes_fastmri_s_offsets_and_keeps_a_short_axis_whole():
    image = np.arange(7 * 5).reshape(7, 5)
    np.testing.assert_array_equal(center_crop(image, (3, 2)), image[2:5, 1:3])
    assert center_crop(image, (4, 9)).shape == (4, 5)
    assert center_crop(np.zeros((2, 7, 5)), (3, 3)).shape == (2, 3, 3)


def test_undersample_keeps_the_mask_s_columns_of_every_coil():
    rng = np.random.default_rng(0)
    kspace = rng.normal(size=(3, 10, 40)) + 1j * rng.normal(size=(3, 10, 40))
    result = undersample(kspace, 4.0, seed=1)
    columns = result.mask[0] > 0
    assert columns.sum() == 10 and columns[19:22].all()  # W / R columns, the central 8 %
    assert (result.mask == result.mask[0]).all()  # whole columns
    np.testing.assert_array_equal(result.measurement[:, :, columns], kspace[:, :, columns])
    assert not result.measurement[:, :, ~columns].any()
    again = undersample(kspace, 4.0, seed=1)
    np.testing.assert_array_equal(again.mask, result.mask)
    with pytest.raises(ValueError, match="complex"):
        undersample(np.ones((4, 4)), 4.0)


def test_degrade_then_compare_scores_in_the_reference_s_units(tmp_path, single_coil, capsys):
    path, _ = single_coil
    under = tmp_path / "under.npy"
    argv = ["degrade", str(path), str(under), "--task", "mri", "--acceleration", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "slice 1 of 3" in out and f"--truth {path} --slice 1" in out
    assert np.load(under).shape == (1, 96, 40)
    # fully sampled: the zero-filled image is the reference itself, in its own units
    cmp = ["compare", str(under), "--task", "mri", "--truth", str(path), "--slice", "1",
           "--methods", "zero-filled", "--out", str(tmp_path / "cmp"), "-q"]  # fmt: skip
    assert main(cmp) == 0
    row = next(r for r in (tmp_path / "cmp" / "results.md").read_text().splitlines() if "zero" in r)
    assert float(row.split("|")[3]) > 60
    written = np.asarray(Image.open(tmp_path / "cmp" / "zero-filled.png"))
    assert written.shape == (32, 32)  # the reference's central crop
    values = np.load(tmp_path / "cmp" / "zero-filled-values.npy")  # in the k-space's units
    assert values.shape == (32, 32) and values.max() == pytest.approx(esc_max(path), rel=1e-4)


def test_compare_reads_an_under_sampled_fastmri_file_directly(tmp_path, capsys):
    kspace = fft2c(phantom(seed=1))[None].astype(np.complex64)
    test_file = tmp_path / "test.h5"
    write_file(test_file, undersample(kspace[0], 3.0).measurement.astype(np.complex64))
    argv = ["reconstruct", str(test_file), str(tmp_path / "out.npy"), "--task", "mri",
            "--baseline", "zero-filled"]  # fmt: skip
    assert main(argv) == 0
    assert "slice 0 of 1 (the middle one" in capsys.readouterr().out
    assert np.load(tmp_path / "out.npy").shape == (96, 40)


def test_mri_scores_fit_the_scale_to_a_clean_image_but_not_to_a_reference(tmp_path):
    truth = phantom()[24:72]  # (48, 40), brightest 1 or less
    kspace = fft2c(2 * truth)  # the data's units are twice the truth's
    fitted = compare(kspace, "mri", ["zero-filled"], truth=truth)[0]
    assert fitted.psnr > 100
    np.testing.assert_allclose(fitted.image, truth, atol=1e-6)  # kept in the truth's units
    units = compare(kspace, "mri", ["zero-filled"], truth=truth, fit_scale=False)[0]
    expected = 10 * np.log10(truth.max() ** 2 / np.mean(truth**2))  # off by the truth itself
    assert units.psnr == pytest.approx(expected, abs=1e-3)
    written = write_comparison(tmp_path / "c", [units], None, truth, peak=2 * truth.max())
    picture = np.asarray(Image.open(written["zero-filled"]))
    drawn = 255 * truth.mean() / truth.max()  # 2 t drawn with 2 max(t) white
    assert picture.max() == 255 and abs(picture.mean() - drawn) < 0.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["degrade", "{h5}", "{tmp}/u.npy", "--task", "denoise", "--sigma", "5"], "takes --task"),
        (["degrade", "{h5}", "{tmp}/u.npy", "--task", "mri", "--sigma", "5"], "its own noise"),
        (["degrade", "{h5}", "{tmp}/u.npy", "--task", "mri", "--slice", "3"], "slice 3 is out of"),
        (["degrade", "{png}", "{tmp}/u.npy", "--task", "mri", "--slice", "1"], "this input is an"),
        (["degrade", "{png}", "{tmp}/u.png", "--task", "sr", "--mask", "random"], "mri only"),
        (["reconstruct", "{png}", "{tmp}/o.png", "--task", "denoise", "--slice", "1"], "none is"),
        (["reconstruct", "{h5}", "{tmp}/o.png", "--task", "denoise"], "it takes --task mri"),
        (["compare", "{png}", "--task", "denoise", "--truth", "{h5}", "--out", "{tmp}/c"],
         "scores --task mri only"),
        (["compare", "{test}", "--task", "mri", "--truth", "{test}", "--out", "{tmp}/c"],
         "holds no reference image"),
    ],
)  # fmt: skip
def test_bad_fastmri_usage_is_a_one_line_error(tmp_path, single_coil, capsys, argv, message):
    path, _ = single_coil
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "x.png")
    test_file = tmp_path / "test.h5"
    write_file(test_file, np.ones((1, 96, 40), np.complex64))
    names = {"h5": path, "tmp": tmp_path, "png": tmp_path / "x.png", "test": test_file}
    status = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err
    assert status == 2 and message in err and "Traceback" not in err


def test_reconstruct_slice_all_writes_the_volume_slice_by_slice(tmp_path, single_coil, capsys):
    path, _ = single_coil
    base = ["reconstruct", str(path), "--task", "mri", "--baseline", "zero-filled", "-q"]
    assert main([*base[:2], str(tmp_path / "vol.npy"), *base[2:], "--slice", "all"]) == 0
    volume = np.load(tmp_path / "vol.npy")
    assert volume.shape == (3, 96, 40)
    assert main([*base[:2], str(tmp_path / "two.npy"), *base[2:], "--slice", "2"]) == 0
    np.testing.assert_allclose(volume[2], np.load(tmp_path / "two.npy"))
    bad = [
        ([str(tmp_path / "vol.png"), "--slice", "all"], "ending .npy"),
        ([str(tmp_path / "v.npy"), "--slice", "all", "--maps", "x.npy"], "each slice's maps"),
    ]
    for extra, message in bad:
        assert main([*base[:2], *extra, *base[2:]]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_status:  # argparse's own usage error
        main([*base[:2], str(tmp_path / "v.npy"), *base[2:], "--slice", "every"])
    assert exit_status.value.code == 2 and "a slice number or all" in capsys.readouterr().err
    cmp = ["compare", str(path), "--task", "mri", "--slice", "all", "--out", str(tmp_path / "c")]
    assert main(cmp) == 2 and "compare restores one slice" in capsys.readouterr().err


def test_a_fastmri_file_is_a_volume_of_its_reference_images(tmp_path, single_coil):
    from rimkit.data.volumes import read_volume
    from rimkit.evaluate.runner import load_images

    path, esc = single_coil
    volume = read_volume(path)  # (32, 32, 3): slices last, scaled to the maximum
    np.testing.assert_allclose(volume, np.moveaxis(esc, 0, -1) / esc.max(), rtol=1e-6)
    images = load_images(path)
    assert [name for name, _ in images] == [f"file1000/axis2-{i:03d}" for i in range(3)]
    np.testing.assert_allclose(images[1][1], np.round(esc[1] / esc.max() * 255) / 255, atol=1e-6)
    test_file = tmp_path / "test.h5"
    write_file(test_file, np.ones((1, 2, 8, 8), np.complex64))
    with pytest.raises(ValueError, match="holds no reference images"):
        read_volume(test_file)


def test_the_mask_patterns_of_the_command_line_are_the_library_s():
    from rimkit.cli import MASK_PATTERNS, build_parser
    from rimkit.operators import MRI_MASKS

    assert MASK_PATTERNS == tuple(MRI_MASKS)
    args = build_parser().parse_args(["eval", "--task", "mri", "--data", "x", "--mask", "random"])
    assert args.mask == "random"


@pytest.mark.parametrize("pattern", ["random", "equispaced"])
def test_degrade_samples_fastmri_s_column_patterns(tmp_path, single_coil, pattern):
    path, _ = single_coil
    for source, out in ((path, "k.npy"), ("example:camera", "cam.npy")):
        argv = ["degrade", str(source), str(tmp_path / out), "--task", "mri", "--mask", pattern,
                "--acceleration", "4", "-q"]  # fmt: skip
        if str(source).startswith("example"):
            argv.append("--gray")
        assert main(argv) == 0
        mask = np.asarray(Image.open(tmp_path / out.replace(".npy", "-mask.png"))) > 0
        assert (mask == mask[0]).all()  # whole columns
        width = mask.shape[1]
        centre = round(0.08 * width)
        assert mask[0, width // 2 - centre // 2 : width // 2 - centre // 2 + centre].all()
        assert abs(mask[0].mean() - 0.25) < 0.1


def test_a_folder_of_fastmri_files_trains_and_evaluates_on_their_reference_slices(tmp_path):
    from rimkit.data.volumes import fastmri_folder
    from rimkit.evaluate.runner import load_images
    from rimkit.train import ExperimentConfig, train
    from rimkit.train.data import _source_images

    folder = tmp_path / "singlecoil_val"
    folder.mkdir()
    for number, slices in ((1000, 3), (1001, 2)):
        references = np.stack([phantom(seed=s)[24:72] for s in range(slices)])  # (S, 48, 40)
        write_file(folder / f"file{number}.h5", np.ones((slices, 8, 8), np.complex64),
                   reconstruction_esc=references.astype(np.float32))  # fmt: skip
    assert [p.name for p in fastmri_folder(folder)] == ["file1000.h5", "file1001.h5"]
    assert fastmri_folder(tmp_path / "nothing") is None
    images = load_images(folder)
    assert len(images) == 5 and images[3][0] == "file1001/axis2-000"
    assert images[0][1].shape == (48, 40)  # slices, not reformats across them
    config = ExperimentConfig.from_dict(
        {
            "model": {"cell": "mri", "channels": 2, "features": 4, "hidden": 4, "train_steps": 2},
            "data": {"train": str(folder), "val_images": 1, "val_patches": 4, "patch_size": 16},
            "tasks": [{"name": "mri", "acceleration": [2, 4], "sigma": [0, 5]}],
            "optim": {"iterations": 2, "batch_size": 2, "val_every": 2, "checkpoint_every": 2},
        }
    )
    slices = _source_images(config.data, str(folder))
    assert len(slices) == 5 and all(s.shape == (1, 48, 40) for s in slices)
    assert train(config, tmp_path / "run", progress=False)["iteration"] == 2


def esc_max(path) -> float:
    """The largest value of slice 1's reference image in a fastMRI file."""
    return float(read_fastmri(path, 1).reference.max())
