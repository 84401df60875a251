"""Saved programs from files nobody vouched for (issue 21 item 1), through the real `archviz`
command line: a TorchScript archive or a `.pt2` whose graph calls `aten::from_file(path,
shared=True)` (which creates and maps a file writable) writes no file without --unsafe, and does
with it (so each test can fail); a `.pt2` holding an AOTInductor `.so` whose constructor writes a
marker is refused from its member list, before torch.export.load could dlopen it, and runs once
the user consents. Every file is made here; the `.so` is compiled from C in the test."""

import json
import os
import shutil
import subprocess
import zipfile

import pytest
import torch
from torch import nn

from test_cli import error_line, run_cli

REFUSED = ("runs aten::from_file, which archviz does not run without consent: a saved program "
           "runs on fake tensors (shapes only, no real storage, no file) with tensor operators "
           "from an allowlist")


class FromFile(nn.Module):
    """forward maps `path` as a shared, writable 16-float file."""

    def __init__(self, path: str):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.path = path

    def forward(self, x):
        y = torch.from_file(self.path, shared=True, size=16)
        return self.fc(x) + y[:3].sum()


class Zeros(nn.Module):
    """The same graph with `zeros` where the crafted .pt2 will call `from_file`."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x) + torch.zeros(16)[:3].sum()


def craft_from_file_pt2(clean: str, evil: str, target: str) -> None:
    """`clean` with its `aten.zeros` node turned into `aten.from_file(target, shared=True)`."""
    with zipfile.ZipFile(clean) as zin, zipfile.ZipFile(evil, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("models/model.json"):
                doc = json.loads(data)
                nodes = [n for n in doc["graph_module"]["graph"]["nodes"]
                         if n["target"] == "torch.ops.aten.zeros.default"]
                assert len(nodes) == 1, "the clean program's zeros node"
                nodes[0]["target"] = "torch.ops.aten.from_file.default"
                nodes[0]["inputs"] = [
                    {"name": "filename", "arg": {"as_string": target}, "kind": 1},
                    {"name": "shared", "arg": {"as_bool": True}, "kind": 1},
                    {"name": "size", "arg": {"as_int": 16}, "kind": 1}] + nodes[0]["inputs"][1:]
                data = json.dumps(doc).encode()
            zout.writestr(item, data)


def test_torchscript_from_file_needs_consent(tmp_path):
    target = tmp_path / "written_by_torchscript"
    torch.jit.save(torch.jit.script(FromFile(str(target))), str(tmp_path / "evil.pt"))
    assert not target.exists()
    rc, out, err = run_cli(["summary", "evil.pt", "--input-shape", "2,4"], tmp_path,
                           keras_backend="torch")
    assert rc == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert error_line(err).startswith("archviz: error: evil.pt: the TorchScript program " + REFUSED)
    assert not target.exists()
    rc, out, err = run_cli(["summary", "evil.pt", "--input-shape", "2,4", "--unsafe"], tmp_path,
                           keras_backend="torch")
    assert rc == 0, err
    assert target.exists() and target.stat().st_size == 16 * 4  # the program did run


def test_pt2_from_file_needs_consent(tmp_path):
    target = tmp_path / "written_by_pt2"
    torch.manual_seed(0)
    clean = str(tmp_path / "clean.pt2")
    torch.export.save(torch.export.export(Zeros(), (torch.randn(2, 4),)), clean)
    craft_from_file_pt2(clean, str(tmp_path / "evil.pt2"), str(target))
    for command in (["summary", "evil.pt2"], ["write", "evil.pt2", "--logdir", "L"]):
        rc, out, err = run_cli(command, tmp_path, keras_backend="torch")
        assert rc == 1 and out == "" and len(err.strip().splitlines()) == 1, err
        assert error_line(err).startswith(
            "archviz: error: evil.pt2: the torch.export program " + REFUSED)
        assert not target.exists() and not (tmp_path / "L").exists()
    rc, out, err = run_cli(["summary", "evil.pt2", "--unsafe"], tmp_path, keras_backend="torch")
    assert rc == 0, err
    assert target.exists() and target.stat().st_size == 16 * 4


SetStateSource = '''
from typing import Tuple

import torch
from torch import nn


class SetState(nn.Module):
    """Its __setstate__ (run by torch.jit.load) maps a file: loading alone would write it."""

    def __init__(self, path: str):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.path = path
        self.t = torch.zeros(3)

    def forward(self, x):
        return self.fc(x) + self.t

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.path, self.t, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        self.path = state[0]
        self.t = torch.from_file(state[0], shared=True, size=3)
        self.training = state[2]
'''


def test_torchscript_setstate_runs_nothing_when_loaded(tmp_path):
    """torch.jit.load runs an archive's __setstate__: it is loaded under the same allowlist."""
    (tmp_path / "setstate_mod.py").write_text(SetStateSource)
    target = tmp_path / "written_on_load"
    script = ("import torch, setstate_mod\n"
              "torch.jit.save(torch.jit.script(setstate_mod.SetState(%r)), 'setstate.pt')\n"
              % str(target))
    subprocess.run([os.sys.executable, "-c", script], cwd=str(tmp_path), check=True,
                   capture_output=True)
    assert not target.exists()
    rc, out, err = run_cli(["summary", "setstate.pt", "--input-shape", "2,4"], tmp_path,
                           keras_backend="torch")
    assert rc == 1 and error_line(err).startswith(
        "archviz: error: setstate.pt: the TorchScript program " + REFUSED)
    assert not target.exists()
    rc, out, err = run_cli(["summary", "setstate.pt", "--input-shape", "2,4", "--unsafe"],
                           tmp_path, keras_backend="torch")
    assert target.exists(), err  # with consent __setstate__ ran (the load then fails: no `fc`)


CONSTRUCTOR = r'''
#include <stdio.h>
__attribute__((constructor)) static void archviz_test_marker(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fputs("the library's constructor ran\n", f); fclose(f); }
}
'''


def test_pt2_with_native_code_is_refused_before_loading(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the test's shared library")
    marker = tmp_path / "MARKER"
    (tmp_path / "ctor.c").write_text(CONSTRUCTOR)
    subprocess.run(["gcc", "-shared", "-fPIC", "-DMARKER=%s" % json.dumps(str(marker)),
                    "-o", str(tmp_path / "ctor.so"), str(tmp_path / "ctor.c")], check=True)
    clean = str(tmp_path / "clean.pt2")
    torch.export.save(torch.export.export(Zeros(), (torch.randn(2, 4),)), clean)
    with zipfile.ZipFile(clean) as zin, zipfile.ZipFile(tmp_path / "aoti.pt2", "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        so = (tmp_path / "ctor.so").read_bytes()
        zout.writestr(root + "/data/aotinductor/model/model.so", so)
        zout.writestr(root + "/data/aotinductor/model/model.wrapper_metadata.json",
                      '{"AOTI_DEVICE_KEY": "cpu"}')
        zout.writestr(root + "/data/aotinductor/model/model_metadata.json",
                      '{"AOTI_DEVICE_KEY": "cpu"}')
    for command in (["summary", "aoti.pt2"], ["write", "aoti.pt2", "--logdir", "L"]):
        rc, out, err = run_cli(command, tmp_path, keras_backend="torch")
        assert rc == 1 and out == "" and len(err.strip().splitlines()) == 1, err
        assert error_line(err) == (
            "archviz: error: aoti.pt2: the torch.export program holds native code (%s/data/"
            "aotinductor/model/model.so and 2 more), which loading it would run; archviz refuses "
            "without --unsafe. Pass --unsafe (alias --trust-file) if you trust the file" % root)
        assert not marker.exists()
    rc, out, err = run_cli(["summary", "aoti.pt2", "--unsafe"], tmp_path, keras_backend="torch")
    assert marker.exists(), err  # with consent, torch.export.load does load the library


def test_any_native_member_is_refused(tmp_path):
    """Not only AOTInductor's folder: any .so/.dll/.dylib member of a .pt2 (no gcc needed)."""
    clean = str(tmp_path / "clean.pt2")
    torch.export.save(torch.export.export(Zeros(), (torch.randn(2, 4),)), clean)
    with zipfile.ZipFile(clean) as zin, zipfile.ZipFile(tmp_path / "lib.pt2", "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        zout.writestr("extra/helper.dylib", b"\xcf\xfa\xed\xfe")
    rc, out, err = run_cli(["summary", "lib.pt2"], tmp_path, keras_backend="torch")
    assert rc == 1 and "holds native code (extra/helper.dylib)" in error_line(err)


def test_allowlist_refuses_file_operators_and_keeps_the_document():
    """In process: the operator allowlist and the fake-tensor run give the document of a real run
    (the CLI's default for .pt2 and TorchScript), and refuse from_file before it runs."""
    from tensorboard_archviz.extract import torch_saved

    assert not torch_saved.operator_allowed(torch.ops.aten.from_file.default)
    assert torch_saved.operator_allowed(torch.ops.aten.addmm.default)
    assert not torch_saved.operator_allowed(torch.ops.aten.equal.default)  # needs values
    torch.manual_seed(0)
    model, x = Zeros().eval(), torch.randn(2, 4)
    program = torch.export.export(model, (x,))
    real = torch_saved.extract_exported_program(program)
    with torch_saved.without_real_storage() as guard:
        fake = torch_saved.extract_exported_program(program)
    assert guard.refused is None and fake.to_dict() == real.to_dict()
    scripted = torch.jit.script(model)
    real = torch_saved.extract_torchscript(scripted, x)
    with torch_saved.without_real_storage():
        fake = torch_saved.extract_torchscript(scripted, x)
    assert fake.to_dict() == real.to_dict()


class BranchOnValues(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if bool(x.sum() > 0):
            return self.fc(x)
        return self.fc(x) * 2


def test_a_branch_on_tensor_values_says_so(tmp_path):
    """Fake tensors have no values: a program that branches on one stops with one line naming
    the operator; with consent it runs on the real input."""
    from tensorboard_archviz import loaders

    path = str(tmp_path / "branch.pt")
    torch.jit.save(torch.jit.script(BranchOnValues()), path)
    with pytest.raises(loaders.LoadError) as info:
        loaders.open_file(path, loaders.Options(input_shapes=[(2, 4)]))
    assert str(info.value) == (
        "%s: the TorchScript program needs tensor values to run (aten::_local_scalar_dense), "
        "and without consent archviz runs a saved program on fake tensors only (shapes and "
        "dtypes, no values). Pass --unsafe (alias --trust-file) if you trust the file" % path)
    got = loaders.open_file(path, loaders.Options(input_shapes=[(2, 4)], unsafe=True))
    assert got.arch.model.total_params == 15 and got.arch.node("fc").output_shapes == [[2, 3]]


class Allocates(nn.Module):
    """forward asks for a 1 TiB tensor (2^38 floats)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        pad = torch.zeros(1 << 38)
        return self.fc(x) + pad[:3].sum()


def test_a_program_allocates_nothing_without_consent(tmp_path):
    """On fake tensors a 1 TiB request costs nothing (peak memory stays far below it); on real
    tensors (--unsafe) the allocator refuses it, so the test can fail."""
    import resource

    from tensorboard_archviz import loaders

    path = str(tmp_path / "allocates.pt")
    torch.jit.save(torch.jit.script(Allocates()), path)
    got = loaders.open_file(path, loaders.Options(input_shapes=[(2, 4)]))
    assert got.arch.model.total_params == 15
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 1024 ** 2  # KiB: < 4 GiB
    with pytest.raises(loaders.LoadError, match="can't allocate memory|DefaultCPUAllocator"):
        loaders.open_file(path, loaders.Options(input_shapes=[(2, 4)], unsafe=True))
