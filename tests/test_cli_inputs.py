"""The command line's guard rails: what an input's values mean, outputs that could overwrite
inputs, and flags that do not belong to the task."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from rimkit import io, writing
from rimkit.cli import main


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def noisy(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "noisy.png"
    Image.fromarray((rng.random((20, 24)) * 255).astype(np.uint8)).save(path)
    return path


DENOISE = ("--task", "denoise", "--sigma", "25", "--model", "denoise-gray")


def test_integers_are_read_by_their_bit_depth_or_refused(tmp_path):
    ramp = np.arange(12).reshape(3, 4)
    np.save(tmp_path / "u16.npy", (ramp * 1000).astype(np.uint16))
    np.testing.assert_allclose(io.read_image(tmp_path / "u16.npy"), ramp * 1000 / 65535)
    np.save(tmp_path / "u16be.npy", (ramp * 1000).astype(">u2"))  # big-endian
    np.testing.assert_allclose(io.read_image(tmp_path / "u16be.npy"), ramp * 1000 / 65535)
    for dtype in (np.int64, np.int32, np.uint32):
        np.save(tmp_path / "i.npy", ramp.astype(dtype))
        with pytest.raises(ValueError, match=r"range rimkit cannot tell.*uint8 as 0-255"):
            io.read_image(tmp_path / "i.npy")
    Image.fromarray((ramp * 5000).astype(np.int32), "I").save(tmp_path / "i32.tif")
    np.testing.assert_allclose(io.read_image(tmp_path / "i32.tif"), ramp * 5000 / 65535)
    Image.fromarray((ramp * -1).astype(np.int32), "I").save(tmp_path / "neg.tif")
    with pytest.raises(ValueError, match="int32 values"):
        io.read_image(tmp_path / "neg.tif")


def test_channels_first_arrays_are_refused_with_the_fix(tmp_path):
    np.save(tmp_path / "chw.npy", np.zeros((3, 16, 16)))
    with pytest.raises(ValueError, match=r"\(3, 16, 16\).*np\.moveaxis\(a, 0, -1\)"):
        io.read_image(tmp_path / "chw.npy")


def test_alpha_is_dropped_with_a_note_and_gray_alpha_converts_to_gray(tmp_path, capsys):
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "red.png")
    with pytest.warns(UserWarning, match="alpha channel is dropped"):
        assert io.read_image(tmp_path / "red.png").shape == (12, 12, 3)
    gray_alpha = np.stack([np.full((12, 12), 200, np.uint8), np.full((12, 12), 255, np.uint8)], -1)
    Image.fromarray(gray_alpha, "LA").save(tmp_path / "la.png")
    argv = ("degrade", tmp_path / "la.png", tmp_path / "o.png", "--task", "denoise", "--sigma", 0)
    status, _, err = run(capsys, *argv, "--gray")
    assert status == 0, err
    assert "note: " in err and "alpha channel is dropped" in err and "UserWarning" not in err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), 200)


def test_float_images_on_the_0_255_scale_are_refused_but_mri_slices_of_any_scale_pass(
    tmp_path, capsys
):
    np.save(tmp_path / "big.npy", np.linspace(0, 255, 400).reshape(20, 20))
    for argv in (
        ("reconstruct", tmp_path / "big.npy", tmp_path / "o.npy", *DENOISE),
        ("degrade", tmp_path / "big.npy", tmp_path / "o.npy", "--task", "denoise", "--sigma", 5),
    ):
        status, _, err = run(capsys, *argv)
        assert status == 2 and "values up to 255" in err and "divide it by 255" in err
        assert not (tmp_path / "o.npy").exists()
    argv = ("degrade", tmp_path / "big.npy", tmp_path / "k.npy", "--task", "mri")
    assert run(capsys, *argv)[0] == 0


def test_blur_kernels_from_files_are_normalised_and_bad_ones_refused(tmp_path, noisy, capsys):
    blur = ("--task", "blur", "--sigma", "0")
    np.save(tmp_path / "unit.npy", np.full((3, 3), 1 / 9))
    np.save(tmp_path / "nine.npy", np.ones((3, 3)))
    assert (
        run(capsys, "degrade", noisy, tmp_path / "a.npy", *blur, "--kernel", tmp_path / "unit.npy")[
            0
        ]
        == 0
    )
    status, _, err = run(
        capsys, "degrade", noisy, tmp_path / "b.npy", *blur, "--kernel", tmp_path / "nine.npy"
    )
    assert status == 0 and "sums to 9; it is normalised to sum 1" in err
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    bad = {
        "zero.npy": np.zeros((3, 3)),
        "negative.npy": np.array([[0.5, -0.1], [0.3, 0.3]]),
        "complex.npy": np.ones((3, 3), complex) / 9,
    }
    for name, kernel in bad.items():
        np.save(tmp_path / name, kernel)
        status, _, err = run(
            capsys, "degrade", noisy, tmp_path / "c.npy", *blur, "--kernel", tmp_path / name
        )
        assert status == 2 and "the kernel in" in err, (name, err)
    assert not (tmp_path / "c.npy").exists()


def test_an_off_centre_psf_gets_a_note_and_a_centred_one_none(tmp_path, noisy, capsys):
    blur = ("--task", "blur", "--sigma", "0")
    psf = np.zeros((9, 9))
    psf[3:6, 3:6] = 1  # centred on pixel (4, 4)
    np.save(tmp_path / "centred.npy", psf)
    np.save(tmp_path / "off.npy", np.roll(psf, (0, 3), axis=(0, 1)))
    status, _, err = run(
        capsys, "degrade", noisy, tmp_path / "a.npy", *blur, "--kernel", tmp_path / "centred.npy"
    )
    assert status == 0 and "centre of mass" not in err
    status, _, err = run(
        capsys, "degrade", noisy, tmp_path / "b.npy", *blur, "--kernel", tmp_path / "off.npy"
    )
    assert status == 0 and "+0.0 rows and +3.0 columns from its centre pixel (4, 4)" in err


def test_an_output_folder_that_takes_no_files_fails_before_the_work(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(writing.tempfile, "mkstemp", refuse)
    with pytest.raises(ValueError, match=r"cannot write '.*out\.png': Permission denied"):
        writing.check_output(tmp_path / "out.png")


def test_outputs_never_overwrite_inputs_even_with_force(tmp_path, noisy, capsys):
    folder = tmp_path / "cmp"
    folder.mkdir()
    inside = folder / "tv.png"
    inside.write_bytes(noisy.read_bytes())
    before = digest(inside)
    argv = ("compare", inside, "--task", "denoise", "--sigma", 25, "--methods", "tv")
    status, _, err = run(capsys, *argv, "--out", folder, "--force")
    assert status == 2 and "holds the input" in err and digest(inside) == before

    status, _, err = run(capsys, "demo", "--image", inside, "--out", folder, "--force")
    assert status == 2 and "holds the input" in err and digest(inside) == before

    frames = tmp_path / "frames"
    frames.mkdir()
    first = frames / "step-001.png"
    first.write_bytes(noisy.read_bytes())
    argv = ("reconstruct", first, tmp_path / "out.png", *DENOISE, "--force")
    status, _, err = run(capsys, *argv, "--trajectory", frames)
    assert status == 2 and "holds the input" in err and digest(first) == digest(noisy)
    argv = ("reconstruct", noisy, frames / "step-002.png", *DENOISE, "--force")
    status, _, err = run(capsys, *argv, "--trajectory", frames)
    assert status == 2 and "lies in the trajectory folder" in err


def test_a_gif_trajectory_never_overwrites_a_gif_input_even_with_force(tmp_path, noisy, capsys):
    gif = tmp_path / "in.gif"
    with Image.open(noisy) as image:
        image.save(gif)
    before = digest(gif)
    argv = ("reconstruct", gif, tmp_path / "out.png", *DENOISE, "--force")
    status, _, err = run(capsys, *argv, "--trajectory", gif)
    assert status == 2 and "is the file" in err and "choose another path" in err
    mask = tmp_path / "mask.gif"
    Image.fromarray(np.full((20, 24), 255, np.uint8)).save(mask)
    argv = ("reconstruct", noisy, tmp_path / "o.png", "--task", "inpaint", "--mask", mask)
    status, _, err = run(capsys, *argv, "--trajectory", tmp_path / "." / "mask.gif", "--force")
    assert status == 2 and "is the file" in err
    assert digest(gif) == before and Image.open(mask).n_frames == 1


def test_bad_output_paths_fail_before_any_work(tmp_path, noisy, capsys, monkeypatch):
    import rimkit.pipeline

    monkeypatch.setattr(rimkit.pipeline, "restore", lambda *a, **k: pytest.fail("ran"))
    (tmp_path / "adir.png").mkdir()
    for output, message in [
        (tmp_path / "o.gif", "does not write .gif (GIF keeps at most 256 colours)"),
        (tmp_path / "o.xcf", "unsupported output type '.xcf'"),
        (tmp_path / "missing" / "o.png", "does not exist"),
        (tmp_path / "adir.png", "is a folder; give a file name"),
    ]:
        status, _, err = run(capsys, "reconstruct", noisy, output, *DENOISE, "--force")
        assert status == 2 and message in err, err
    status, _, err = run(
        capsys,
        "degrade",
        noisy,
        tmp_path / "adir.png",
        "--task",
        "denoise",
        "--sigma",
        5,
        "--force",
    )
    assert status == 2 and "is a folder" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "denoise", "--sigma", "25", "--scale", "3"], "--scale applies to --task sr"),
        (
            ["--task", "denoise", "--sigma", "25", "--maps", "lowres"],
            "--maps applies to --task mri",
        ),
    ],
)
def test_flags_that_do_not_belong_to_the_task_are_refused(tmp_path, noisy, capsys, extra, message):
    extra = [e.format(noisy=noisy) for e in extra]
    status, _, err = run(capsys, "reconstruct", noisy, tmp_path / "o.png", *extra)
    assert status == 2 and message in err, err
    assert not (tmp_path / "o.png").exists()


def test_degrade_refuses_complex_images_for_image_tasks(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.ones((16, 16), complex) * 0.5)
    argv = ("degrade", tmp_path / "c.npy", tmp_path / "o.npy", "--task", "denoise", "--sigma", 5)
    status, _, err = run(capsys, *argv)
    assert status == 2 and "complex" in err and "--task mri" in err


def test_mri_is_never_tiled():
    from rimkit.pipeline import restore

    kspace = np.fft.fft2(np.ones((16, 16))).astype(complex)
    with pytest.raises(ValueError, match="reconstructed whole: tiles do not apply"):
        restore(kspace, "mri", None, baseline="zero-filled", tile=8)


def test_seeds_sigmas_and_eval_data_are_checked_up_front(tmp_path, noisy, capsys):
    argv = ("degrade", noisy, tmp_path / "o.png", "--task", "denoise", "--sigma", 5)
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in (*argv, "--seed", 2**70)])
    assert stop.value.code == 2 and "a seed lies in [0, 2**63)" in capsys.readouterr().err
    status, _, err = run(
        capsys, "degrade", noisy, tmp_path / "o.png", "--task", "denoise", "--sigma", 300
    )
    assert status == 2 and "sigma must lie in [0, 255]" in err
    argv = (
        "eval",
        "--model",
        "denoise-gray",
        "--task",
        "denoise",
        "--data",
        noisy,
        "--out",
        tmp_path / "e",
    )
    status, _, err = run(capsys, *argv)
    assert status == 2 and "is a file; give the folder of images" in err


def test_an_eval_stopped_by_bad_input_leaves_no_journal_to_trip_over(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(data / "a.png")
    Image.fromarray(np.full((3, 5), 90, np.uint8)).save(data / "b.png")  # too small for x2
    out = tmp_path / "e"
    argv = (
        "eval",
        "--task",
        "sr",
        "--scale",
        2,
        "--data",
        data,
        "--out",
        out,
        "--baselines",
        "bicubic",
    )
    status, _, err = run(capsys, *argv)
    assert status == 2 and "too small" in err
    assert not out.exists()  # no journal (a rerun would meet the image again), no empty folder


def test_restore_refuses_what_it_would_misread(monkeypatch):
    from rimkit.pipeline import restore

    image = np.full((16, 16), 0.5)
    for bad, error, message in [
        ((image * 255).astype(np.uint8), ValueError, "uint8 values; restore takes float images"),
        (image[None], ValueError, r"shape \(1, 16, 16\).*np\.moveaxis"),
        (image * 255, ValueError, "values up to 127.5"),
        (np.zeros((1, 1, 16, 16)), ValueError, "restore takes \\(H, W\\) or \\(H, W, C\\)"),
        (torch.zeros(16, 16), TypeError, "numpy array"),
    ]:
        with pytest.raises(error, match=message):
            restore(bad, "denoise", None, baseline="tv", sigma=25)
    with pytest.raises(TypeError, match=r"an nn.Module such as load_model\(name\)\.model"):
        restore(image, "denoise", "denoise-gray", sigma=25)


def test_load_model_names_and_devices(tmp_path, monkeypatch):
    from rimkit.zoo import load_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "deblur").mkdir()
    with pytest.warns(UserWarning, match="names a shipped model and a path here"):
        assert load_model("deblur").card is not None
    with pytest.raises(TypeError, match="takes a model name"):
        load_model(None)
    with pytest.raises(ValueError, match="device 'gpu' is not a device"):
        load_model("deblur", device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda' is not available here.*device=cpu"):
            load_model("deblur", device="cuda")


def test_reconstruct_and_compare_take_threads(tmp_path, noisy, capsys):
    before = torch.get_num_threads()
    try:
        argv = ["reconstruct", noisy, tmp_path / "out.png", "--task", "denoise", "--sigma", "25"]
        assert run(capsys, *argv, "--baseline", "tv", "--threads", "1")[0] == 0
        assert torch.get_num_threads() == 1
        status, _, err = run(capsys, "compare", noisy, "--task", "denoise", "--methods", "tv",
                             "--out", tmp_path / "cmp", "--threads", "0")  # fmt: skip
        assert status == 2 and "--threads must be >= 1, got 0" in err
    finally:
        torch.set_num_threads(before)


def test_no_command_shows_the_overview(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: rimkit" in err and "degrade" in err and "required" not in err


def test_a_reader_that_stops_early_is_no_error():
    import subprocess
    import sys

    child = (
        "import rimkit.cli as cli\n"
        "cli._run_models = lambda args: [print('x' * 999) for _ in range(1000)]\n"
        "raise SystemExit(cli.main(['models']))"
    )  # a megabyte: more than the pipe holds, so the writer meets the closed end
    cmd = [sys.executable, "-c", child]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    status, err = proc.wait(timeout=120), proc.stderr.read().decode()
    proc.stderr.close()
    assert status == 0 and "error" not in err, err


@pytest.mark.parametrize(
    "argv, quiet, debug",
    [
        (["-q", "reconstruct", "in.png", "out.png", "--task", "sr"], True, False),
        (["reconstruct", "in.png", "out.png", "--task", "sr", "-q"], True, False),
        (["--debug", "-q", "models"], True, True),
        (["models", "--debug"], False, True),
        (["reconstruct", "in.png", "out.png", "--task", "sr"], False, False),
    ],
)
def test_quiet_and_debug_go_before_or_after_the_command(argv, quiet, debug):
    from rimkit.cli import build_parser

    args = build_parser().parse_args(argv)
    assert (args.quiet, args.debug) == (quiet, debug)


def test_quiet_models_is_refused_rather_than_ignored(capsys):
    for argv in (["-q", "models"], ["models", "-q"]):
        status, out, err = run(capsys, *argv)
        assert status == 2 and out == "" and "with -q it would print nothing" in err


def test_quiet_before_the_command_silences_it(tmp_path, noisy, capsys):
    argv = [noisy, tmp_path / "out.png", "--task", "denoise", "--sigma", "25", "--baseline", "tv"]
    status, out, err = run(capsys, "-q", "reconstruct", *argv)
    assert status == 0 and (out, err) == ("", "") and (tmp_path / "out.png").is_file()


def test_an_output_in_a_missing_folder_says_how_to_make_it(tmp_path):
    from rimkit.io import check_output

    with pytest.raises(ValueError, match=r"does not exist; create it first \(mkdir -p .*no such"):
        check_output(tmp_path / "no such" / "out.png")


def test_a_shorter_trajectory_into_its_folder_removes_the_longer_ones_steps_only(
    tmp_path, noisy, capsys
):
    frames = tmp_path / "frames"
    argv = ("reconstruct", noisy, tmp_path / "out.png", *DENOISE, "--trajectory", frames)
    assert run(capsys, *argv, "--steps", 5)[0] == 0
    (frames / "notes.txt").write_text("mine")
    assert run(capsys, *argv, "--steps", 3, "--force")[0] == 0
    assert sorted(p.name for p in frames.iterdir()) == [
        "notes.txt", "step-001.png", "step-002.png", "step-003.png",
    ]  # fmt: skip


def test_degrade_refuses_a_fraction_or_acceleration_its_task_would_ignore(tmp_path, capsys):
    out = tmp_path / "o.png"
    for flags, message in (
        (("--task", "denoise", "--sigma", 25, "--acceleration", 4), "--acceleration applies"),
        (("--task", "sr", "--fraction", 0.3), "--fraction applies to --task inpaint only, not sr"),
    ):
        status, _, err = run(capsys, "degrade", "example:camera", out, *flags)
        assert status == 2 and message in err and not out.exists()
    assert run(capsys, "degrade", "example:camera", out, "--task", "inpaint", "-q")[0] == 0
    assert np.mean(np.asarray(Image.open(tmp_path / "o-mask.png")) == 0) == pytest.approx(
        0.5, abs=0.01
    )


def test_a_peak_far_below_the_data_is_named_and_a_device_is_no_image_folder(tmp_path, capsys):
    np.save(tmp_path / "counts.npy", np.random.default_rng(0).random((16, 16)) * 1161)
    argv = ("reconstruct", tmp_path / "counts.npy", tmp_path / "o.npy", "--task", "denoise")
    status, _, err = run(capsys, *argv, "--units", "data", "--sigma", 5, "--peak", 10)
    assert status == 2 and "over 16 times the peak given (10): give a peak near" in err
    status, _, err = run(capsys, "eval", "--task", "denoise", "--data", "/dev/null")
    assert status == 2 and "'/dev/null' is not a folder (a device or a pipe)" in err


def test_negative_numbers_with_an_exponent_are_values_not_options():
    from rimkit.cli import build_parser

    base = ["reconstruct", "in.png", "out.png", "--task", "denoise"]
    for given, value in (("-1e9", -1e9), ("-2.5E-3", -2.5e-3), ("-.5e2", -50.0), ("-5", -5.0)):
        assert build_parser().parse_args([*base, "--background", given]).background == value
    args = build_parser().parse_args([*base, "--angle", "-1e-1", "--center", "-1e-2", "2e-2"])
    assert args.angle == -0.1 and args.center == [-0.01, 0.02]
