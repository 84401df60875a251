"""One loader per file format (issue 22 item 1): every module in `loaders.LOADERS` has
`match(path)`, `open(path, options)` and `FILTERS_NOTE`; the first match wins and each real file
is claimed by its own loader; unknown files and non-regular files get one-line errors."""

import os

import pytest
import torch
from torch import nn

from tensorboard_archviz import loaders
from tensorboard_archviz.loaders import (hf_config, keras_file, torch_export, torch_pickle,
                                         torchscript)


def test_every_loader_has_the_contract():
    assert loaders.LOADERS == [hf_config, keras_file, torch_export, torchscript, torch_pickle]
    for loader in loaders.LOADERS:
        assert callable(loader.match) and callable(loader.open), loader.__name__
        assert loader.FILTERS_NOTE is None or isinstance(loader.FILTERS_NOTE, str)
    assert [l.__name__.rsplit(".", 1)[1] for l in loaders.LOADERS
            if l.FILTERS_NOTE is None] == ["keras_file", "torch_pickle"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    model, x = nn.Sequential(nn.Linear(4, 3)), torch.randn(2, 4)
    torch.save(model, str(root / "full.pt"))
    torch.save(model.state_dict(), str(root / "weights.bin"))
    torch.save(model, str(root / "no_suffix"))  # a zip holding data.pkl
    torch.export.save(torch.export.export(model, (x,)), str(root / "prog.pt2"))
    os.rename(root / "prog.pt2", root / "prog.zip")  # found by its members, not its name
    torch.export.save(torch.export.export(model, (x,)), str(root / "prog.pt2"))
    torch.jit.save(torch.jit.script(model), str(root / "scripted.pt"))
    (root / "config.json").write_text('{"model_type": "llama"}')
    (root / "weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    (root / "hdf5_no_suffix").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    (root / "notes.txt").write_text("not a model")
    return root


@pytest.mark.parametrize("name,loader", [
    ("full.pt", torch_pickle), ("weights.bin", torch_pickle), ("no_suffix", torch_pickle),
    ("prog.pt2", torch_export), ("prog.zip", torch_export), ("scripted.pt", torchscript),
    ("config.json", hf_config), ("weights.h5", keras_file), ("hdf5_no_suffix", keras_file),
])
def test_each_file_is_claimed_by_its_loader(files, name, loader):
    assert loaders.find(str(files / name)) is loader


def test_unknown_and_missing_files(files, tmp_path):
    with pytest.raises(loaders.LoadError, match=r"notes\.txt: unknown model format \(expected a "
                                                r"Keras \.keras/\.h5/\.hdf5 file or a PyTorch "):
        loaders.find(str(files / "notes.txt"))
    with pytest.raises(loaders.LoadError, match="no such file or directory"):
        loaders.find(str(tmp_path / "missing.pt"))
    with pytest.raises(loaders.LoadError, match="is a directory, not a model file"):
        loaders.find(str(tmp_path))


def test_open_follows_the_consent_rules(files):
    """Opening through the registry: a full pickle is refused without consent; the .pt2 and
    TorchScript programs open on fake tensors and give the real figures."""
    with pytest.raises(loaders.LoadError, match="loading it would run code from the file"):
        loaders.open_file(str(files / "full.pt"), loaders.Options(input_shapes=[(2, 4)]))
    unsafe = loaders.open_file(str(files / "full.pt"),
                               loaders.Options(input_shapes=[(2, 4)], unsafe=True))
    for name in ("prog.pt2", "scripted.pt"):
        got = loaders.open_file(str(files / name), loaders.Options(input_shapes=[(2, 4)]))
        assert got.arch.model.total_params == unsafe.arch.model.total_params == 15
        assert got.arch.model.macs == unsafe.arch.model.macs == 12
        assert got.arch.node("0").output_shapes == [[2, 3]]
