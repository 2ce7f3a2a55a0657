"""Integer image files as a camera writes them: 16-bit TIFF and PNG read and written in full,
colour of 16 bits per channel, stacks refused, and counts kept under ``--units data``.

Everything runs on generated images; nothing here reads ../shared.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from rimkit import io
from rimkit.cli import main


def counts(shape=(32, 32), top=3000, seed=0) -> np.ndarray:
    """A smooth 12-bit-camera image: uint16 counts from 100 to ``top``."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 2)
    field = (field - field.min()) / (field.max() - field.min())
    return np.round(100 + (top - 100) * field).astype(np.uint16)


def test_16_bit_gray_and_colour_tiffs_are_read_in_full(tmp_path):
    gray, rgb = counts(), np.stack([counts(seed=s) for s in range(3)], axis=-1)
    tifffile.imwrite(tmp_path / "g.tif", gray)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb")
    for name, stored in (("g.tif", gray), ("c.tif", rgb), ("planar.tif", rgb)):
        np.testing.assert_array_equal(io.read_image(tmp_path / name), stored / 65535)
        np.testing.assert_array_equal(io.read_image(tmp_path / name, counts=True), stored)
        assert io.stored_white(tmp_path / name) == 65535
    Image.fromarray(gray).save(tmp_path / "lzw.tif", compression="tiff_lzw")  # read by Pillow
    np.testing.assert_array_equal(io.read_image(tmp_path / "lzw.tif", counts=True), gray)


def test_stacks_are_refused_not_cut_to_their_first_plane(tmp_path):
    tifffile.imwrite(tmp_path / "z.tif", np.stack([counts(seed=s) for s in range(5)]))
    with pytest.raises(ValueError, match=r"stack of \(5, 32, 32\).*one 2-D image"):
        io.read_image(tmp_path / "z.tif")
    pages = [Image.fromarray(counts(seed=s)) for s in range(3)]
    pages[0].save(tmp_path / "p.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(ValueError, match="stack"):
        io.read_image(tmp_path / "p.tif")
    with tifffile.TiffWriter(tmp_path / "series.tif") as tif:  # a series per page
        for seed in range(3):
            tif.write(counts(seed=seed), photometric="minisblack")
    with pytest.raises(ValueError, match=r"stack of 3 images of \(32, 32\) \(as separate series"):
        io.read_image(tmp_path / "series.tif")


def test_int16_tiffs_are_refused_not_read_as_16_bit(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", counts(top=255).astype(np.int16))
    with pytest.raises(ValueError, match="holds int16 values, whose range rimkit cannot tell"):
        io.read_image(tmp_path / "s.tif")
    assert io.read_image(tmp_path / "s.tif", counts=True).max() == 255  # counts: as stored
    tifffile.imwrite(tmp_path / "i.tif", counts(top=255).astype(np.int32))  # Pillow's mode I
    assert io.read_image(tmp_path / "i.tif").max() == 255 / 65535


def test_16_bit_outputs_keep_16_bits_where_the_type_can(tmp_path):
    image = np.random.default_rng(1).random((6, 7))
    for name in ("a.tif", "a.png"):
        io.write_image(tmp_path / name, image, bits=16)
        assert np.abs(io.read_image(tmp_path / name) - image).max() < 1e-5
    io.write_image(tmp_path / "c.tif", np.stack([image] * 3, -1), bits=16)
    assert io.stored_white(tmp_path / "c.tif") == 65535
    with pytest.raises(ValueError, match="cannot hold 16 bits"):
        io.write_image(tmp_path / "c.png", np.stack([image] * 3, -1), bits=16)
    with pytest.raises(ValueError, match="cannot hold 16 bits"):
        io.write_image(tmp_path / "a.jpg", image, bits=16)


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_restores_counts_of_a_16_bit_tiff_into_a_16_bit_tiff(tmp_path, capsys):
    clean = counts((48, 48))
    noisy = clean + np.random.default_rng(2).normal(0, 60, clean.shape)
    tifffile.imwrite(tmp_path / "noisy.tif", np.round(noisy).astype(np.uint16))
    tifffile.imwrite(tmp_path / "clean.tif", clean)
    argv = ["reconstruct", tmp_path / "noisy.tif", tmp_path / "out.tif", "--task", "denoise"]
    status, out, _ = run(capsys, *argv, "--units", "data", "--sigma", "60", "--threads", "1")
    assert status == 0 and "in the input's counts, 16 bits" in out
    restored = tifffile.imread(tmp_path / "out.tif")
    assert restored.dtype == np.uint16 and 2000 < restored.max() < 3500  # counts, not [0, 1]
    error = np.abs(restored.astype(float) - clean).mean()
    assert error < 0.8 * np.abs(noisy - clean).mean()
    argv = ["compare", tmp_path / "noisy.tif", "--task", "denoise", "--units", "data"]
    argv += ["--sigma", "60", "--methods", "tv", "--out", tmp_path / "cmp", "-q"]
    assert run(capsys, *argv, "--truth", tmp_path / "clean.tif")[0] == 0
    values = np.load(tmp_path / "cmp" / "tv-values.npy")
    assert 2000 < values.max() < 3500


def test_cli_keeps_16_bits_of_an_image_and_notes_a_range_barely_used(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "dim.tif", counts((32, 32)))
    argv = ["reconstruct", tmp_path / "dim.tif", tmp_path / "out.tif", "--task", "denoise"]
    status, out, err = run(capsys, *argv, "--sigma", "1", "--threads", "1")
    assert status == 0 and "16 bits, as the input" in out
    assert "uses 4.6 % of its 16-bit range" in err and "--units data" in err
    assert tifffile.imread(tmp_path / "out.tif").dtype == np.uint16


def test_tiffs_pillow_converts_and_files_misnamed_tif_read_as_before(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.tif")
    assert io.read_image(tmp_path / "cmyk.tif").shape == (16, 16, 3)  # converted, not K dropped
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.tif")
    palette = io.read_image(tmp_path / "palette.tif")
    assert palette.shape == (16, 16, 3) and palette.max() > 0.5
    Image.fromarray(rgb).save(tmp_path / "png.tif", format="PNG")  # a PNG named .tif
    np.testing.assert_array_equal(io.read_image(tmp_path / "png.tif"), rgb / 255)
    tifffile.imwrite(tmp_path / "one.tif", counts()[None])  # (1, H, W): one plane
    np.testing.assert_array_equal(io.read_image(tmp_path / "one.tif", counts=True), counts())


def png_16_bit_rgb(path, rgb: np.ndarray) -> None:
    """A 16-bit colour PNG, which Pillow cannot write: its chunks by hand."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(
        signature + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def test_a_16_bit_colour_png_is_read_at_8_bits_with_a_note(tmp_path):
    rgb = np.stack([counts(seed=s) for s in range(3)], axis=-1) * 20
    png_16_bit_rgb(tmp_path / "c.png", rgb)
    with pytest.warns(UserWarning, match="16 bits per channel as 8"):
        image = io.read_image(tmp_path / "c.png")
    assert np.abs(image - rgb / 65535).max() < 1 / 255  # the top 8 bits of each


def test_outputs_in_counts_only_where_they_keep_the_input_depth_and_fit(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "dim.tif", counts((32, 32), top=174))
    argv = ["reconstruct", tmp_path / "dim.tif", None, "--task", "denoise", "--units", "data"]
    argv += ["--sigma", "5", "--threads", "1"]
    argv[2] = tmp_path / "o.jpg"  # 8 bits cannot hold 16-bit counts: values / their maximum
    status, out, _ = run(capsys, *argv)
    assert status == 0 and "values / their maximum" in out
    assert np.asarray(Image.open(tmp_path / "o.jpg")).max() > 200
    big = counts((32, 32), top=199_000).astype(np.int32)  # no 16-bit white: not counts
    tifffile.imwrite(tmp_path / "big.tif", big)
    assert io.stored_white(tmp_path / "big.tif") is None


def test_a_noise_map_in_counts_is_read_as_the_measurement_is(tmp_path, capsys):
    clean = counts((32, 32))
    noisy = np.round(clean + np.random.default_rng(4).normal(0, 80, clean.shape))
    np.save(tmp_path / "y.npy", np.clip(noisy, 0, None).astype(np.uint16))
    np.save(tmp_path / "map.npy", np.full(clean.shape, 80, np.uint16))
    argv = ["reconstruct", tmp_path / "y.npy", tmp_path / "o.npy", "--task", "denoise"]
    argv += ["--units", "data", "--noise-map", tmp_path / "map.npy", "--threads", "1"]
    assert run(capsys, *argv)[0] == 0
    error = np.sqrt(np.mean((np.load(tmp_path / "o.npy") - clean) ** 2))
    assert error < 0.8 * np.sqrt(np.mean((noisy - clean) ** 2))


def test_mri_k_space_from_a_picture_is_written_without_a_note(tmp_path, capsys):
    Image.fromarray((counts((32, 32)) // 16).astype(np.uint8)).save(tmp_path / "slice.png")
    argv = ["degrade", tmp_path / "slice.png", tmp_path / "k.npy", "--task", "mri"]
    status, _, err = run(capsys, *argv)
    assert status == 0 and err == "" and np.iscomplexobj(np.load(tmp_path / "k.npy"))


@pytest.mark.parametrize("name", ["c.webp", "g.webp", "g.gif", "c.gif", "g.pgm", "c.ppm", "c.pnm"])
def test_webp_gif_and_netpbm_pictures_are_read_as_stored(tmp_path, name):
    gray = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint8)
    stored = np.stack([gray, 255 - gray, gray // 2], -1) if name[0] == "c" else gray
    lossless = {"lossless": True} if name.endswith(".webp") else {}
    Image.fromarray(stored).save(tmp_path / name, **lossless)
    np.testing.assert_array_equal(io.read_image(tmp_path / name, counts=True), stored)
    assert io.stored_white(tmp_path / name) == 255  # a gray WebP (stored as RGB) comes back gray


def test_a_12_bit_pgm_is_read_on_its_own_maximum_as_its_counts(tmp_path):
    values = (np.arange(48 * 64).reshape(48, 64) % 4096).astype(">u2")
    (tmp_path / "m.pgm").write_bytes(b"P5 # a camera\n64 48\n4095\n" + values.tobytes())
    np.testing.assert_array_equal(io.read_image(tmp_path / "m.pgm"), values / 4095)
    np.testing.assert_array_equal(io.read_image(tmp_path / "m.pgm", counts=True), values)
    assert io.stored_white(tmp_path / "m.pgm") == 4095


@pytest.mark.parametrize("white", [100, 1000, 65535])
def test_colour_and_text_netpbm_keep_every_value_pillow_would_round(tmp_path, white):
    rgb = np.random.default_rng(white).integers(0, white + 1, (5, 7, 3))
    binary = b"P6\n7 5\n%d\n" % white + rgb.astype(">u2" if white > 255 else "u1").tobytes()
    (tmp_path / "b.ppm").write_bytes(binary)
    text = b"P3\n# text\n7 5 %d\n" % white + " ".join(map(str, rgb.ravel())).encode()
    (tmp_path / "t.ppm").write_bytes(text)
    for name in ("b.ppm", "t.ppm"):
        np.testing.assert_array_equal(io.read_image(tmp_path / name, counts=True), rgb)
        np.testing.assert_array_equal(io.read_image(tmp_path / name), rgb / white)
        assert io.stored_white(tmp_path / name) == white


def test_a_cut_or_overfull_netpbm_is_refused(tmp_path):
    (tmp_path / "cut.ppm").write_bytes(b"P6\n7 5\n1000\n" + bytes(20))
    with pytest.raises(ValueError, match=r"fewer values than its header's 7x5 pixels"):
        io.read_image(tmp_path / "cut.ppm")
    (tmp_path / "over.pgm").write_bytes(b"P2\n2 1\n100\n50 101\n")
    with pytest.raises(ValueError, match=r"values above its header's maximum, 100"):
        io.read_image(tmp_path / "over.pgm")


def test_a_16_bit_gray_output_may_be_a_pgm(tmp_path):
    values = np.array([[0, 1000, 65535]], np.uint16)
    io.write_image(tmp_path / "o.pgm", values / 65535, bits=16)
    np.testing.assert_array_equal(io.read_image(tmp_path / "o.pgm", counts=True), values)
    assert io.stored_white(tmp_path / "o.pgm") == 65535


def test_gray_pictures_stored_as_colour_come_back_gray(tmp_path):
    from PIL import Image

    gray = np.random.default_rng(3).integers(0, 256, (32, 40), dtype=np.uint8)
    Image.fromarray(gray).convert("RGB").save(tmp_path / "lossy.webp", quality=90)
    assert io.read_image(tmp_path / "lossy.webp").ndim == 2
    palette = Image.fromarray(gray // 32 * 32).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(tmp_path / "p.gif")
    with Image.open(tmp_path / "p.gif") as opened:
        assert opened.mode == "P"
    assert io.read_image(tmp_path / "p.gif").ndim == 2
    for name in ("p.png", "p.tif"):  # a palette of grays in any format
        palette.save(tmp_path / name)
        np.testing.assert_array_equal(io.read_image(tmp_path / name), gray // 32 * 32 / 255)


def test_webp_and_netpbm_are_written_losslessly_and_gif_is_refused(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 24, 3)) / 255
    for name, image in (("c.webp", rgb), ("g.webp", rgb[..., 0]), ("c.ppm", rgb)):
        io.write_image(tmp_path / name, image)
        np.testing.assert_allclose(io.read_image(tmp_path / name), image, atol=1e-12)
    with pytest.raises(ValueError, match=r"does not write \.gif .*256 colours.*\.png"):
        io.check_output(tmp_path / "o.gif")


def test_animations_are_refused_not_cut_to_their_first_frame(tmp_path):
    frames = [Image.fromarray(counts(seed=s).astype(np.uint8)) for s in range(3)]
    for name in ("a.gif", "a.webp"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:])
        with pytest.raises(ValueError, match=r"holds 3 images \(an animation\).*own file"):
            io.read_image(tmp_path / name)


def test_a_12_bit_pgm_gives_16_bit_picture_outputs(tmp_path, capsys):
    values = (np.arange(32 * 32).reshape(32, 32) * 4 % 4096).astype(">u2")
    (tmp_path / "m.pgm").write_bytes(b"P5\n32 32\n4095\n" + values.tobytes())
    for name in ("r.png", "r.tif", "r.pgm"):
        argv = ["reconstruct", tmp_path / "m.pgm", tmp_path / name, "--task", "denoise"]
        status, _, err = run(capsys, *argv, "--sigma", "10", "--baseline", "tv")
        assert status == 0, err
        assert io.read_image(tmp_path / name, counts=True).max() > 255  # 16 bits kept


def test_a_netpbm_header_with_a_long_comment_is_read(tmp_path):
    path = tmp_path / "c.pgm"
    path.write_bytes(b"P5\n#" + b"x" * 4086 + b"\n2 2\n255\n" + bytes([0, 50, 100, 255]))
    assert io.read_image(path, counts=True).tolist() == [[0, 50], [100, 255]]
    assert io.stored_white(path) == 255
