"""What the library leaves of a caller's process: threads, random streams, dtypes, the lines
its notes are told at."""

from __future__ import annotations

import warnings

import pytest
import torch

from rimkit.models import build_rim
from rimkit.operators import Identity
from rimkit.reconstruct import RIMReconstructor
from rimkit.train import train
from rimkit.zoo import load_model, save_model
from test_train import tiny_config


def test_train_keeps_the_callers_threads_and_random_stream(image_folder, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the recipe asks for 1
    try:
        torch.manual_seed(7)
        expected = torch.rand(3)
        torch.manual_seed(7)
        train(tiny_config(image_folder, threads=1, iterations=2), tmp_path / "run", progress=False)
        assert torch.get_num_threads() == 2
        assert torch.equal(torch.rand(3), expected)
    finally:
        torch.set_num_threads(threads)


def test_load_model_keeps_the_random_stream_and_a_float64_models_precision(tmp_path):
    model = build_rim(features=4, hidden=4, train_steps=2).double()
    path = save_model(tmp_path / "m.safetensors", model, [{"name": "denoise"}])
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    loaded = load_model(path).model
    assert torch.equal(torch.rand(3), expected)
    assert next(loaded.parameters()).dtype == torch.float64
    for mine, theirs in zip(model.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    single = save_model(tmp_path / "f.safetensors", model.float(), [{"name": "denoise"}])
    assert next(load_model(single).model.parameters()).dtype == torch.float32


def test_a_note_on_sigma_is_told_at_the_line_that_called_the_reconstructor():
    rim = build_rim(features=4, hidden=4, train_steps=2)
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        RIMReconstructor(rim)(torch.rand(1, 1, 8, 8), Identity(), 25.0)
    assert [n.filename for n in notes if "sigma 25" in str(n.message)] == [__file__]


def test_save_model_names_the_builder_that_keeps_a_config():
    from rimkit.models.invertible import build_invertible

    with pytest.raises(ValueError, match=r"build_rim\(variant='invertible'"):
        save_model("x.safetensors", build_invertible(features=4, hidden=4, train_steps=2))


def test_a_lock_file_its_holder_removed_does_not_lock_the_run(tmp_path):
    import fcntl

    from rimkit.train.run_folder import _still_named, run_lock

    with run_lock(tmp_path):
        late = open(tmp_path / ".lock")  # opened just before the holder leaves
    fcntl.flock(late, fcntl.LOCK_EX | fcntl.LOCK_NB)  # it gets the removed file's lock
    assert not _still_named(late, tmp_path / ".lock")  # which run_lock takes for no lock
    with run_lock(tmp_path):  # a new holder makes the file anew
        assert (tmp_path / ".lock").exists()
    late.close()
