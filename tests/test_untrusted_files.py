"""Untrusted files and hostile names through the real `archviz` command line: no code from a file
runs without --unsafe (crafted .pt, crafted .pt2, random bytes, Keras Lambda in .h5), deep JSON
and terminal escapes print one clean line."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

from tensorboard_archviz import metadata, schema, summary
from test_cli import error_line, run_cli

ESC = "\x1b"
HOSTILE = ["conv\x1b[2J\x1b[H", "fc\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07", "title\x1b]0;pwned\x07",
           "c1\x9b31m", "bell\x07nul\x00"]


def _evil_class(marker):
    class Evil:  # unpickling it runs os.system: the marker file proves the code ran
        def __reduce__(self):
            return (os.system, ("touch %s" % marker,))
    return Evil


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import torch
    from torch import nn

    root = tmp_path_factory.mktemp("untrusted")
    marker = root / "MARKER"
    Evil = _evil_class(marker)
    torch.save({"model": Evil()}, str(root / "evil.pt"))
    (root / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    torch.export.save(torch.export.export(model, (torch.randn(2, 4),)), str(root / "ok.pt2"))
    buf = io.BytesIO()
    torch.save(((Evil(),), {}), buf)  # the .pt2's example inputs, replaced by a code pickle
    with zipfile.ZipFile(root / "ok.pt2") as zin, \
            zipfile.ZipFile(root / "evil.pt2", "w") as zout:
        names = zin.namelist()
        assert any(n.endswith("sample_inputs/model.pt") for n in names), names
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, buf.getvalue() if item.filename.endswith(
                "sample_inputs/model.pt") else data)
    return root, marker


@pytest.mark.parametrize("name,needle", [
    ("evil.pt", r"evil\.pt is a full pickled model or object \(its pickle names posix\.system\): "
                r"loading it would run code from the file, so archviz refuses without --unsafe\. "
                r"Pass --unsafe \(alias --trust-file\) if you trust the file; otherwise save the "
                r"model with torch\.export\.save .*"),
    ("evil.pt2", r"evil\.pt2 is a torch\.export program whose pickled parts \(example inputs, "
                 r"constants\) hold more than tensors \(its pickle names posix\.system\): loading "
                 r"it would run code from the file, so archviz refuses without --unsafe\..*"),
    ("random.pt", r"random\.pt: not a PyTorch file \(the weights-only unpickler stopped: .*\)"),
])
def test_no_code_runs_without_consent(files, name, needle):
    import re

    root, marker = files
    for command in (["summary", name, "--input-shape", "2,4"],
                    ["write", name, "--input-shape", "2,4", "--logdir", "L"]):
        rc, out, err = run_cli(command, root, keras_backend="torch")
        assert rc == 1 and out == ""
        assert re.fullmatch("archviz: error: " + needle, error_line(err)), error_line(err)
        assert len(err.strip().splitlines()) == 1, err
        assert not marker.exists()
    assert not (root / "L").exists()


def test_unsafe_is_the_one_opt_in(files):
    root, marker = files
    rc, out, err = run_cli(["summary", "ok.pt2", "--width", 100], root, keras_backend="torch")
    assert rc == 0 and "Total params: 15" in out  # a clean .pt2 needs no flag
    rc, out, err = run_cli(["summary", "evil.pt", "--input-shape", "2,4", "--unsafe"], root,
                           keras_backend="torch")
    assert marker.exists()  # the crafted file does run code once the user consents
    assert rc == 1 and error_line(err).endswith("evil.pt holds a dict (keys 'model') without "
                                                "a model in it")


def test_keras_h5_lambda_needs_unsafe(tmp_path):
    import subprocess
    import sys

    script = ("import keras\n"
              "m = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2, "
              "name='double'), keras.layers.Dense(2, name='d')])\n"
              "m.save('lam.h5')\n")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env, check=True,
                   capture_output=True)
    rc, out, err = run_cli(["summary", "lam.h5"], tmp_path)
    assert rc == 1 and error_line(err).startswith(
        "archviz: error: lam.h5: the model holds a Lambda layer (Python code inside the file), "
        "which Keras loads only in unsafe mode: pass --unsafe (alias --trust-file)")
    rc, out, err = run_cli(["summary", "lam.h5", "--unsafe", "--width", 100], tmp_path)
    assert rc == 0, err
    assert "double (Lambda)" in out and "Total params: 8" in out


def hostile_arch():
    names = HOSTILE
    nodes = [schema.Node("n%d" % i, name, "Dense", output_shapes=[[None, 2]],
                         params={"trainable": 6, "non_trainable": 0}, macs=4)
             for i, name in enumerate(names)]
    nodes[1].id = names[1]  # an id with OSC 52 too
    return schema.Architecture(
        "torch", "2\x1b[31m", schema.ModelInfo("model\x1b]0;title\x07", "Net\x1b[5m",
                                               total_params=30, trainable_params=30),
        nodes=nodes, edges=[schema.Edge(nodes[0].id, nodes[1].id)])


def test_terminal_escapes_never_printed(tmp_path):
    with summary.ArchVizWriter(str(tmp_path / "logs" / "run\x1b[2J")) as w:
        w.add_architecture(hostile_arch(), step=0)
    for args in (["summary", "logs"], ["summary", "logs", "--width", 40],
                 ["summary", "logs", "--json"], ["summary", "logs", "--run", "nope\x1b[2J"]):
        rc, out, err = run_cli(args, tmp_path, keras_backend="torch")
        assert ESC not in out and ESC not in err and "\x9b" not in out + err, (args, out, err)
        assert "\x07" not in out + err and "\x00" not in out + err
        if args[-1] == "--json":
            assert json.loads(out)["nodes"][1]["name"] == HOSTILE[1]  # escaped, not lost
        elif "nope" not in str(args[-1]):
            assert rc == 0 and "fc?]52;c;ZXZpbCBjbGlwYm9hcmQ=?" in out
    assert rc == 1 and error_line(err).startswith("archviz: error: logs has no run 'nope")


@pytest.mark.parametrize("depth", [500, 10_000])
def test_deep_json_in_a_logdir_is_one_line(tmp_path, depth):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.util import tensor_util

    text = json.dumps(hostile_arch().to_dict()).replace(
        '"config": {}', '"config": ' + '{"x": ' * depth + '1' + '}' * depth, 1)
    s = summary_pb2.Summary()
    s.value.add(tag=metadata.ARCHITECTURE_TAG, metadata=metadata.create_architecture_metadata(),
                tensor=tensor_util.make_tensor_proto(np.array(text.encode(), dtype=object)))
    with summary.ArchVizWriter(str(tmp_path / "logs" / "deep")) as w:
        w.add_summary(s, step=0)
    rc, out, err = run_cli(["summary", "logs"], tmp_path, keras_backend="torch")
    assert rc == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert error_line(err) == (
        "archviz: error: architecture of run 'deep' step 0 is unreadable: nodes[0].config.x."
        "x.x.x.x.…: nested deeper than the JSON depth limit of 100 levels")


FORGED = ['x\nModel: "evil" (Evil, torch 9)', "\u202eboj\u202c", "a\u2066b\u2069c\u200fd\u2028e"]


def test_names_cannot_forge_lines_or_reorder_text(tmp_path):
    """A model or layer name with a newline, a Unicode line separator or bidi controls prints on
    its one line, with each such character shown as "?" (the title too, issue 21 item 7)."""
    arch = hostile_arch()
    arch.model.name = FORGED[0]
    arch.model.class_name = FORGED[1]
    for node, name in zip(arch.nodes, FORGED):
        node.name = node.id = name
    arch.edges = []
    with summary.ArchVizWriter(str(tmp_path / "logs" / "forged")) as w:
        w.add_architecture(arch, step=0)
    bidi = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u2028\u2029"
    for width in (200, 30):
        rc, out, err = run_cli(["summary", "logs", "--width", width], tmp_path,
                               keras_backend="torch")
        assert rc == 0, err
        lines = out.splitlines()
        assert [l for l in lines if l.startswith("Model:")] == [lines[0]]  # no forged title
        assert not any(c in out for c in bidi) and "\r" not in out
    rc, out, err = run_cli(["summary", "logs"], tmp_path, keras_backend="torch")
    lines = out.splitlines()
    assert lines[0] == 'Model: "x?Model: "evil" (Evil, torch 9)" (?boj?, torch 2)'
    assert [l.split(" (")[0] for l in lines[4:7]] == [
        'x?Model: "evil"', "?boj?", "a?b?c?d?e"]  # each name on its row


def test_a_hostile_event_file_is_one_line(tmp_path):
    """A logdir whose only run holds a tensor claiming [2^20, 2^20] floats (4 TiB when decoded):
    the CLI prints one line naming the run, no traceback (the reader bounds it or the CLI catches
    whatever reading raises)."""
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2 ** 20)] * 2)
    s = summary_pb2.Summary()
    s.value.add(tag=metadata.ARCHITECTURE_TAG, metadata=metadata.create_architecture_metadata(),
                tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape,
                                              float_val=[1.0]))
    with summary.ArchVizWriter(str(tmp_path / "logs" / "bomb")) as w:
        w.add_summary(s, step=0)
    rc, out, err = run_cli(["summary", "logs"], tmp_path, keras_backend="torch")
    assert rc == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "bomb" in error_line(err)
