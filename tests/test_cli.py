"""The `archviz` command line (console script and `python -m tensorboard_archviz`), run for real in
subprocesses: saved Keras (.keras, .h5) and PyTorch (full model, torch.export .pt2, TorchScript)
files -> `archviz write` -> event files -> TensorBoard's data provider / a real TensorBoard route
give the same architecture the callback / add_architecture wrote; `archviz summary` tables fit the
width; every error is one clear line, exit code 1, and nothing is written."""

import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import PLUGIN, get_json, wait_for_run
from tensorboard_archviz import cli, schema

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
LENET_PARAMS = {"input_layer": 0, "conv2d": 520, "max_pooling2d": 0, "conv2d_1": 25_050,
                "max_pooling2d_1": 0, "flatten": 0, "dense": 1_225_500, "dense_1": 5_010}
TORCH_SHAPE = (2, 1, 28, 28)


def cli_env(pythonpath=(TESTS,), keras_backend="tensorflow"):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(list(pythonpath) + [ROOT])
    env.update(KERAS_BACKEND=keras_backend, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("COLUMNS", None)  # the table's width comes from --width (or no limit when piped)
    return env


def run_cli(args, cwd, console_script=False, pythonpath=(TESTS,), keras_backend="tensorflow",
            timeout=240):
    """(exit code, stdout, stderr) of one real `archviz` run."""
    if console_script:
        exe = shutil.which("archviz")
        assert exe, "the `archviz` console script is not installed (pip install -e .)"
        cmd = [exe]
    else:
        cmd = [sys.executable, "-m", "tensorboard_archviz"]
    p = subprocess.run(cmd + [str(a) for a in args], cwd=str(cwd),
                       env=cli_env(pythonpath, keras_backend),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def error_line(stderr):
    lines = [l for l in stderr.splitlines() if l.startswith("archviz: error: ")]
    assert len(lines) == 1, "expected one error line, got stderr:\n" + stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------
# fixtures: a fitted Keras LeNet (callback logdir + saved files), a PyTorch model and its files

@pytest.fixture(scope="module")
def keras_env(tmp_path_factory):
    import keras

    from fixtures.digits import load_digits_28x28
    from fixtures.keras_models import build_lenet, compile_classifier
    from tensorboard_archviz import ArchVizCallback

    root = tmp_path_factory.mktemp("keras_cli")
    x, y, _, _ = load_digits_28x28()
    model = compile_classifier(build_lenet())
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0,
              callbacks=[ArchVizCallback(log_dir=str(root / "A"))])
    model.save(str(root / "lenet.keras"))
    model.save(str(root / "lenet.h5"))

    class Scale(keras.layers.Layer):  # deliberately not registered
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    custom = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d"),
                               Scale(name="scale")], name="custom")
    custom.save(str(root / "custom.keras"))
    custom.save(str(root / "custom.h5"))
    return root


@pytest.fixture(scope="module")
def keras_written(keras_env):
    """`archviz write` of both files into logdir B (console script and python -m)."""
    root = keras_env
    outs = {}
    for fmt, console in (("keras", True), ("h5", False)):
        rc, out, err = run_cli(["write", "lenet." + fmt, "--logdir", "B", "--run", fmt], root,
                               console_script=console)
        assert rc == 0, err
        outs[fmt] = out
    return root, outs


@pytest.fixture(scope="module")
def torch_env(tmp_path_factory):
    import torch

    import torch_models as tm
    from tensorboard_archviz import add_architecture
    from tensorboard_archviz.summary import ArchVizWriter

    root = tmp_path_factory.mktemp("torch_cli")
    torch.manual_seed(0)
    model = tm.SmallResNet().eval()
    x = torch.randn(*TORCH_SHAPE)
    torch.save(model, str(root / "full.pt"))
    torch.save(model.state_dict(), str(root / "weights.pth"))
    torch.export.save(torch.export.export(model, (x,)), str(root / "model.pt2"))
    torch.jit.save(torch.jit.script(model), str(root / "scripted.pt"))
    torch.jit.save(torch.jit.trace(model, x), str(root / "traced.pt"))
    with ArchVizWriter(str(root / "R" / "ref")) as w:
        add_architecture(w, model, x)
    _, _, ref = cli.architecture_from_logdir(str(root / "R"), "ref", None)
    return root, ref


# ---------------------------------------------------------------------------------------------
# Keras round trip

def test_keras_round_trip_through_tensorboard(keras_written, tb_server):
    """Callback (logdir A) vs `archviz write` of .keras and .h5 (logdir B), served by a real
    TensorBoard: node for node, param for param."""
    root, outs = keras_written
    assert outs["keras"].strip() == ("wrote the architecture of lenet.keras (Sequential, "
                                     "1,256,080 params) to %s (run 'keras', step 0)"
                                     % os.path.join("B", "keras"))
    with tb_server(str(root)) as url:
        for run in ("A/train", "B/keras", "B/h5"):
            wait_for_run(url, run)
        status, runs = get_json(url + PLUGIN + "/runs")
        assert status == 200 and runs["B/h5"]["steps"] == [0] and runs["A/train"]["steps"] == [0]
        archs = {}
        for run in ("A/train", "B/keras", "B/h5"):
            status, archs[run] = get_json(url + PLUGIN + "/architecture?run=" + run)
            assert status == 200, archs[run]
    ref = archs["A/train"]
    assert {n["id"]: n["params"]["trainable"] for n in ref["nodes"]} == LENET_PARAMS
    assert ref["model"]["total_params"] == 1_256_080
    # .h5: identical, every field (ids, classes, shapes, params, MACs, configs, edges, versions)
    assert archs["B/h5"] == ref
    # .keras: identical except Keras' own variable paths: a model loaded from .keras creates its
    # variables outside the model's name scope ("conv2d/kernel" instead of "lenet/conv2d/kernel")
    got = archs["B/keras"]
    paths = []
    for n in got["nodes"]:
        for wt in n.get("weights", []):
            paths.append(wt.pop("path"))
    ref_paths = []
    for n in ref["nodes"]:
        for wt in n.get("weights", []):
            ref_paths.append(wt.pop("path"))
    assert got == ref
    assert paths == [p[len("lenet/"):] for p in ref_paths] and len(paths) == 8


def test_summary_json_and_tables(keras_written):
    root, _ = keras_written
    _, _, ref = cli.architecture_from_logdir(str(root / "A"), "train", None)
    rc, out, err = run_cli(["summary", "B", "--run", "h5", "--json"], root)
    assert rc == 0, err
    assert schema.from_json(out).to_dict() == ref.to_dict() == json.loads(out)

    tables = {}
    rc, tables[60], err = run_cli(["summary", "B", "--run", "h5", "--width", 60], root)
    assert rc == 0, err
    rc, tables[200], err = run_cli(["summary", "B", "--run", "keras", "--width", 200], root)
    assert rc == 0, err
    for width, text in tables.items():
        lines = text.rstrip("\n").splitlines()
        assert max(len(l) for l in lines) <= width, (width, text)
        for node in ref.nodes:  # every layer name and param count, in full, on one line
            assert any(node.id in l for l in lines), node.id
            assert any("{:,}".format(node.total_params) in l for l in lines), node.id
        for line in ("Total params: 1,256,080", "Trainable params: 1,256,080",
                     "Non-trainable params: 0",
                     "MACs per example: {:,}".format(ref.model.macs)):
            assert line in lines, (width, text)
    wide = tables[200].splitlines()
    assert wide[2].split() == ["Layer", "(type)", "Output", "shape", "Params", "MACs",
                               "Connected", "to"]
    assert any(re.fullmatch(r"dense \(Dense\) +\(None, 500\) +1,225,500 +1,225,000 +flatten", l)
               for l in wide), tables[200]
    narrow = tables[60]
    assert "dense (Dense)\n  output: (None, 500)\n  params: 1,225,500\n  MACs: 1,225,000\n" \
           "  from: flatten" in narrow


def test_summary_of_a_torch_file_shows_non_trainable_params(tmp_path):
    import torch

    import torch_models as tm

    torch.save(tm.SideEffects(), str(tmp_path / "side.pt"))
    rc, out, err = run_cli(["summary", "side.pt", "--input-shape", "2,3,8,8", "--width", 100,
                            "--unsafe"], tmp_path)
    assert rc == 0, err
    lines = out.splitlines()
    assert max(len(l) for l in lines) <= 100
    assert any(re.match(r"frozen \(Linear\) +\(2, 4\) +36 \(36 NT\) +32 +mean$", l)
               for l in lines), out
    assert any(re.match(r"bn \(BatchNorm2d\) +\(2, 8, 6, 6\) +16 +0 +conv$", l)
               for l in lines), out
    assert "Trainable params: 240" in lines and "Non-trainable params: 36" in lines


def test_render_table_never_truncates():
    """A name longer than the width is the only thing ever split; nesting is kept."""
    long = "block_" + "x" * 80
    arch = schema.Architecture(
        framework="torch", framework_version="2", model=schema.ModelInfo(
            "M", "M", total_params=123_456_789, trainable_params=123_456_789),
        nodes=[schema.Node("inp", "inp", "Input", output_shapes=[[1, 3]]),
               schema.Node(long, long, "Sequential", output_shapes=[[1, 1000]],
                           params={"trainable": 123_456_789, "non_trainable": 0}),
               schema.Node(long + ".0", "0", "Linear", parent=long, output_shapes=[[1, 1000]],
                           params={"trainable": 123_456_789, "non_trainable": 0}, macs=5)],
        edges=[schema.Edge("inp", long + ".0", [1, 3])])
    for width in (20, 40, 60, 90, 200):
        text = cli.render_table(arch, width)
        lines = text.splitlines()
        assert max(len(l) for l in lines) <= width, (width, text)
        assert any("123,456,789" in l for l in lines[3:-5])  # the row's count, unbroken
        assert ("Total params: 123,456,789" in lines) if width >= 40 else \
            (lines[lines.index("Total params:") + 1] == "  123,456,789")
        assert long in "".join(l.strip() for l in lines)
    unlimited = cli.render_table(arch, None).splitlines()  # no width: nothing wraps
    assert any(l.startswith("  " + long + ".0 (Linear)  (1, 1000)") for l in unlimited)
    # title, rule, header, rule, 3 rows, rule, 3 totals, MACs
    assert len(unlimited) == 1 + 1 + 1 + 1 + 3 + 1 + 3 + 1


# ---------------------------------------------------------------------------------------------
# PyTorch files

def _assert_like_add_architecture(ref, got, kind):
    from test_torch_saved import assert_same_as_extract_torch

    if kind == "full":  # the very same nn.Module: the same document
        assert got.to_dict() == ref.to_dict()
    else:
        assert_same_as_extract_torch(ref, got, "equal" if kind == "scripted" else "subset")
        assert got.extraction["method"] == (
            "torch.export" if kind == "pt2" else "torchscript")


@pytest.mark.parametrize("kind,fname,shape", [
    ("full", "full.pt", TORCH_SHAPE),
    ("pt2", "model.pt2", None),               # the program carries its example input
    ("scripted", "scripted.pt", TORCH_SHAPE),
    ("traced", "traced.pt", TORCH_SHAPE),
])
def test_torch_files_match_add_architecture(torch_env, kind, fname, shape):
    root, ref = torch_env
    args = ["write", fname, "--logdir", "W_" + kind, "--run", kind]
    if kind == "full":
        args.append("--unsafe")  # a pickled model runs code when loaded
    if shape:
        args += ["--input-shape", ",".join(map(str, shape))]
    rc, out, err = run_cli(args, root, console_script=kind == "pt2")
    assert rc == 0, err
    assert "(SmallResNet, 1,354 params)" in out
    _, step, got = cli.architecture_from_logdir(str(root / ("W_" + kind)), None, None)
    assert step == 0
    assert got.node_ids() == ref.node_ids() == [
        "x", "stem", "block", "block.conv1", "block.bn1", "block.relu", "block.conv2",
        "block.bn2", "add", "relu", "pool", "flatten", "fc"]  # execution order
    rows = [r[0] for r in cli.table_rows(got)]  # the CLI table: the same order, nested by parent
    assert [r.split(" (")[0].strip() for r in rows] == got.node_ids()
    add = rows[got.node_ids().index("add")]
    assert add == ("  " if got.node("add").parent == "block" else "") + "add (add)"
    assert got.node("block").params == {"trainable": 1_184, "non_trainable": 0}
    assert ("add", "relu") in got.edge_pairs() and ("stem", "add") in got.edge_pairs()
    _assert_like_add_architecture(ref, got, kind)


# ---------------------------------------------------------------------------------------------
# errors: one line, exit code 1, nothing written

ERRORS = [
    ("missing_file", "torch", ["write", "missing.keras"], r"missing\.keras: no such file or "
     r"directory$"),
    ("unknown_format", "torch", ["write", "foo.txt"], r"foo\.txt: unknown model format \(expected "
     r"a Keras \.keras/\.h5/\.hdf5 file or a PyTorch \.pt/\.pth/\.pt2/.*file\)$"),
    ("state_dict", "torch", ["write", "weights.pth"],
     r"weights\.pth holds a state_dict \(keys 'stem\.weight', .*\): weights without the model's "
     r"structure, so there is no architecture to read\. Build the model in Python, load the "
     r"weights with model\.load_state_dict\(\.\.\.\), then save the whole model .*torch\.save.*"),
    ("no_input_shape", "torch", ["write", "full.pt", "--trust-file"], r"full\.pt holds a full SmallResNet model "
     r"but no example input: pass --input-shape \(batch first\), e.g\. --input-shape "
     r"1,1,224,224$"),
    ("input_does_not_fit", "torch", ["write", "full.pt", "--input-shape", "2,3,28,28",
                                     "--unsafe"],
     r"full\.pt: the input does not fit the model: .*failed in module 'stem' \(Conv2d\): "
     r"RuntimeError: .*expected input\[2, 3, 28, 28\] to have 1 channels, but got 3.*"),
    ("class_not_importable", "torch", ["write", "full.pt", "--input-shape", "2,1,28,28",
                                       "--unsafe"],
     r"full\.pt pickles the model's class \(module torch_models\), which cannot be imported "
     r"here: run archviz from the directory of the module that defines it, or pass --import "
     r"MODULE, or save the model with torch\.export \(a \.pt2 file needs no Python class\)$"),
    ("filters_on_pt2", "torch", ["write", "model.pt2", "--filters"],
     r"--filters needs the model's layers: .*a torch\.export program keeps no modules.*"),
    ("unknown_filter_layer", "torch", ["write", "full.pt", "--input-shape", "2,1,28,28",
                                       "--filters", "nope", "--unsafe"],
     r"filter grids failed: unknown layer 'nope'; the model's 2-D conv layers are: stem, "
     r"block\.conv1, block\.conv2$"),
    ("bad_input_shape", "torch", ["write", "full.pt", "--input-shape", "2,a"],
     r"--input-shape must be integers separated by commas.*"),
    ("custom_layer_keras", "keras", ["write", "custom.keras"],
     r"custom\.keras: the model uses the custom class 'Scale', which cannot be deserialised "
     r"here \(it is not registered in this process\)\. Pass --import MODULE .*"
     r"register_keras_serializable.*"),
    ("custom_layer_h5", "keras", ["write", "custom.h5"],
     r"custom\.h5: the model uses the custom class 'Scale', which cannot be deserialised here.*"),
]


@pytest.mark.parametrize("name,env,args,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_write_errors_write_nothing(request, name, env, args, message):
    root = request.getfixturevalue("torch_env")[0] if env == "torch" else \
        request.getfixturevalue("keras_env")
    if name == "unknown_format":
        (root / "foo.txt").write_text("not a model")
    logdir = "L_" + name
    # a .keras file loads on any backend, and torch's starts faster than TensorFlow (Keras'
    # legacy .h5 loader imports TensorFlow whatever the backend)
    backend = "tensorflow" if name.endswith("h5") else "torch"
    rc, out, err = run_cli(args + ["--logdir", logdir], root, keras_backend=backend,
                           pythonpath=() if name == "class_not_importable" else (TESTS,))
    assert rc == 1 and out == ""
    assert re.fullmatch("archviz: error: " + message, error_line(err)), error_line(err)
    assert not os.path.exists(root / logdir)


def test_summary_errors(keras_written, tmp_path):
    root, _ = keras_written
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "scalars" / "run1")) as w:  # a logdir without archviz data
        w.add_scalar("loss", 1.0, 0)
    before = sorted(os.listdir(tmp_path / "scalars" / "run1"))
    cases = [
        (["summary", tmp_path / "scalars"], root,
         r"%s holds no architecture \(no run has archviz data\); write one with `archviz write "
         r"MODEL --logdir .*`, ArchVizCallback or add_architecture$"
         % re.escape(str(tmp_path / "scalars"))),
        (["summary", "B"], root,
         r"B holds architectures in several runs; pick one with --run: h5, keras$"),
        (["summary", "B", "--run", "nope"], root,
         r"B has no run 'nope' with an architecture; runs: h5, keras$"),
        (["summary", "B", "--run", "h5", "--step", "3"], root,
         r"no step 3 for the architecture of run 'h5'; available steps: \[0\]$"),
        (["summary", "missing_dir/"], root, r"missing_dir/: no such file or directory$"),
        (["summary", "B", "--run", "h5", "--width", "5"], root,
         r"--width must be at least 20, got 5$"),
    ]
    for args, cwd, message in cases:
        rc, out, err = run_cli(args, cwd)
        assert rc == 1 and out == "", (args, out, err)
        assert re.fullmatch("archviz: error: " + message, error_line(err), re.I), \
            (args, error_line(err))
    assert sorted(os.listdir(tmp_path / "scalars" / "run1")) == before
    assert sorted(os.listdir(root / "B")) == ["h5", "keras"]


MY_LAYERS = """
import keras


@keras.saving.register_keras_serializable(package="my_layers")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
"""

TRAIN_SCRIPT = """
import torch
from torch import nn


class Net(nn.Module):  # pickled as __main__.Net by `python train.py`
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


if __name__ == "__main__":
    torch.save(Net(), "net.pt")
"""


def test_import_option_loads_custom_classes(tmp_path):
    """--import makes a registered custom Keras layer, and a model class pickled from a
    script's __main__, loadable (without it, the error says to use it)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "my_layers.py").write_text(MY_LAYERS)
    (tmp_path / "train.py").write_text(TRAIN_SCRIPT)
    subprocess.run([sys.executable, "train.py"], cwd=str(tmp_path), env=cli_env(),
                   check=True, capture_output=True)
    import importlib.util

    import keras

    spec = importlib.util.spec_from_file_location("my_layers", tmp_path / "lib" / "my_layers.py")
    my_layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(my_layers)  # registers "my_layers>Scale" in this process only
    keras.Sequential([keras.Input((4,), name="inp"), keras.layers.Dense(3, name="d"),
                      my_layers.Scale(name="scale")], name="custom").save(
        str(tmp_path / "custom.keras"))

    rc, out, err = run_cli(["summary", "custom.keras", "--json", "--import",
                            "lib/my_layers.py"], tmp_path, keras_backend="torch")
    assert rc == 0, err
    arch = json.loads(out)
    assert [(n["id"], n["class_name"]) for n in arch["nodes"]] == [
        ("inp", "InputLayer"), ("d", "Dense"), ("scale", "Scale")]

    rc, out, err = run_cli(["summary", "net.pt", "--input-shape", "1,4", "--unsafe"], tmp_path)
    assert rc == 1 and re.search(r"pickles the model's class \(__main__\.Net\).*--import "
                                 r"path/to/that_script\.py", error_line(err))
    saved = os.stat(tmp_path / "net.pt").st_mtime_ns
    rc, out, err = run_cli(["summary", "net.pt", "--input-shape", "1,4", "--import", "train.py",
                            "--width", 80, "--unsafe"], tmp_path)
    assert rc == 0, err
    assert re.search(r"^fc \(Linear\) +\(1, 2\) +10 +8 +x$", out, re.M), out  # MACs per example
    assert os.stat(tmp_path / "net.pt").st_mtime_ns == saved  # train.py's __main__ part: not run


def test_usage_and_help(tmp_path):
    rc, out, err = run_cli(["--help"], tmp_path)
    assert rc == 0 and "write" in out and "summary" in out
    rc, out, err = run_cli(["write", "x.keras"], tmp_path)  # --logdir is required
    assert rc == 2 and "--logdir" in err


# ---------------------------------------------------------------------------------------------
# filter grids

def test_write_with_filters_readable_through_the_plugin_routes(keras_env):
    from werkzeug.test import Client

    from tensorboard_archviz.filters import keras_backend  # noqa: F401 - the backend exists

    root = keras_env
    rc, out, err = run_cli(["write", "lenet.keras", "--logdir", "F", "--run", "lenet",
                            "--filters", "conv2d_1", "--filter-steps", "8", "--filter-max", "4"],
                           root, console_script=True)
    assert rc == 0, err
    assert "and 1 filter grid to" in out
    progress = [l for l in err.splitlines() if l.startswith("archviz")]
    assert progress[0] == "archviz: computing filter grids of conv2d_1 ..."
    assert re.match(r"archviz filters \[1/1\] conv2d_1 \(Conv2D\): 4 of 50 filters", progress[1])
    assert re.match(r"archviz filters \[1/1\] conv2d_1 done in [\d.]+ s", progress[2])

    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin

    from tensorboard_archviz.plugin import ArchVizPlugin

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(root / "F"))
    mux.Reload()
    plugin = ArchVizPlugin(base_plugin.TBContext(
        data_provider=data_provider.MultiplexerDataProvider(mux, str(root / "F"))))
    apps = plugin.get_plugin_apps()

    def get(route, query):
        resp = Client(apps[route]).get(route + "?" + query)
        return resp.status_code, resp.get_data()

    status, body = get("/runs", "")
    assert status == 200 and json.loads(body)["lenet"]["filter_layers"] == ["conv2d_1"]
    status, body = get("/filters", "run=lenet&layer=conv2d_1")
    assert status == 200, body
    meta = json.loads(body)
    assert meta["steps"] == [0] and len(meta["tiles"]) == 4
    status, png = get("/filters_image", "run=lenet&layer=conv2d_1&step=0")
    assert status == 200 and png.startswith(b"\x89PNG")
    img = Image.open(io.BytesIO(png))
    assert img.size[0] >= 2 * 56 and np.asarray(img).std() > 0  # 4 tiles of >= 56 px
    status, body = get("/architecture", "run=lenet")
    assert status == 200 and json.loads(body)["model"]["total_params"] == 1_256_080


def test_table_keeps_json_order_nests_by_parent_and_totals_per_example():
    """Rows in the order the JSON lists nodes (execution order), indented by the parent chain
    even when a functional op comes between children; footer: MACs per example ("at least" when
    incomplete, unknown never counted as 0) and memory."""
    def node(nid, cls, parent=None, macs=0, p=0):
        return schema.Node(nid, nid.rsplit(".", 1)[-1], cls, parent=parent,
                           output_shapes=[[1, 4]], params={"trainable": p, "non_trainable": 0},
                           macs=macs)
    nodes = [node("x", "Input"), node("layer1", "Sequential", macs=None, p=40),
             node("layer1.0", "BasicBlock", "layer1", macs=None, p=40),
             node("layer1.0.conv1", "Conv2d", "layer1.0", macs=1_000, p=40),
             node("layer1.0.relu", "ReLU", "layer1.0"),
             node("add", "add", None),
             node("layer1.0.bn1", "BatchNorm2d", "layer1.0", macs=None),
             node("fc", "Linear", macs=2_000, p=20)]
    nodes[6].macs_reason = "no MACs formula for BatchNorm2d here"
    arch = schema.Architecture(
        "torch", "2", schema.ModelInfo("net", "Net", 60, 60, 0, extra={
            "macs": 3_000, "macs_complete": False, "macs_convention": schema.MACS_CONVENTION,
            "memory": {"params_bytes": 240, "buffers_bytes": 1_536, "activations_bytes": 12_345_678}}),
        nodes=nodes)
    rows = cli.table_rows(arch)
    assert [r[0] for r in rows] == [
        "x (Input)", "layer1 (Sequential)", "  layer1.0 (BasicBlock)",
        "    layer1.0.conv1 (Conv2d)", "    layer1.0.relu (ReLU)", "add (add)",
        "    layer1.0.bn1 (BatchNorm2d)", "fc (Linear)"]
    # null MACs read as in the web table (format.ts UNKNOWN): "—", never "?" or 0
    assert [r[3] for r in rows] == ["0", "—", "—", "1,000", "0", "0", "—", "2,000"]
    lines = cli.render_table(arch, 100).splitlines()
    assert lines[-5:] == ["Total params: 60", "Trainable params: 60", "Non-trainable params: 0",
                          "MACs per example: at least 3,000",
                          "Memory: params 240 B, buffers 1.54 kB, activations 12.3 MB per example"]
    arch.model.macs_complete = True
    assert "MACs per example: 3,000" in cli.render_table(arch, 100).splitlines()
    arch.model.macs_convention = schema.MACS_CONVENTION_V1  # a migrated schema 1 run
    assert "MACs: 3,000 (%s)" % schema.MACS_CONVENTION_V1 in cli.render_table(arch, 300).splitlines()


TINY_LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
              "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 128,
              "torch_dtype": "bfloat16"}
# embeddings 256*64, per layer q/o 64*64, k/v 64*32, MLP 3*64*128, 2 norms of 64; final norm;
# lm_head 64*256 (not tied)
TINY_LLAMA_PARAMS = 256 * 64 + 2 * (2 * 4096 + 2 * 2048 + 3 * 8192 + 128) + 64 + 64 * 256


def test_hf_config_json_on_the_meta_device(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    rc, out, err = run_cli(["write", "config.json", "--logdir", "logs", "--run", "llama"],
                           tmp_path, keras_backend="torch")
    assert rc == 0, err
    assert "(LlamaForCausalLM, {:,} params)".format(TINY_LLAMA_PARAMS) in out
    _, step, arch = cli.architecture_from_logdir(str(tmp_path / "logs"), "llama", None)
    assert arch.model.total_params == TINY_LLAMA_PARAMS == 106_816
    assert arch.node("lm_head").output_shapes == [[1, 16, 256]]  # --seq-len default 16
    assert arch.node("model.layers.1.mlp.down_proj").params["trainable"] == 8192
    assert arch.model.memory["params_bytes"] == 2 * TINY_LLAMA_PARAMS  # bfloat16
    rc, out, err = run_cli(["summary", "config.json", "--seq-len", "8", "--json"], tmp_path,
                           keras_backend="torch")
    assert rc == 0, err
    assert schema.from_json(out).node("lm_head").output_shapes == [[1, 8, 256]]

    bad = dict(TINY_LLAMA, architectures=["LlamaForTelepathy"])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    rc, out, err = run_cli(["summary", "bad.json"], tmp_path, keras_backend="torch")
    assert rc == 1 and error_line(err) == (
        "archviz: error: bad.json names an unknown architecture 'LlamaForTelepathy' "
        "(transformers %s has no such class); remove \"architectures\" to build the base model"
        % __import__("transformers").__version__)
    blocker = tmp_path / "no_transformers" / "transformers"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named transformers')\n")
    rc, out, err = run_cli(["summary", "config.json"], tmp_path, keras_backend="torch",
                           pythonpath=(str(tmp_path / "no_transformers"),))
    assert rc == 1 and error_line(err) == (
        "archviz: error: config.json is a Hugging Face config: building it needs the "
        "`transformers` package (pip install transformers)")
