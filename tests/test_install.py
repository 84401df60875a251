"""What a user gets from a package index (#26): the wheel and the sdist, each installed into a fresh
virtualenv (the sdist with Node and npm absent from PATH), and the viewer-only deployment — a
virtualenv holding only `tensorboard` and this package (no TensorFlow, Keras or torch) serving a
logdir written by the Keras and PyTorch writers in the main environment: the routes answer with the
same documents as the main environment's TensorBoard, the tab opens in Chromium, and
`archviz summary <logdir>` prints the table.

The build reuses the dashboard that setup built (ARCHVIZ_SKIP_FRONTEND_BUILD=1); the virtualenvs
take `tensorboard` at the main environment's version from the package index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import version as dist_version

import pytest

from conftest import PLUGIN, get_json, http_get, open_archviz, run_tensorboard, wait_for_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMEWORKS = ("tensorflow", "keras", "torch", "jax")
VERSION = __import__("tensorboard_archviz").__version__

# Run in each virtualenv: what an installed package must have.
CHECK = r"""
import importlib.metadata as md, importlib.util, json, os, sys
import tensorboard_archviz
dist = md.distribution("tensorboard-archviz")
static = os.path.join(os.path.dirname(tensorboard_archviz.__file__), "static")
eps = {(e.group, e.name, e.value) for e in dist.entry_points}
lic = [f for f in (dist.files or []) if "LICENSE" in f.name]
print(json.dumps({
    "version": tensorboard_archviz.__version__, "metadata_version": dist.version,
    "static": sorted(os.listdir(static)), "entry_points": sorted(map(list, eps)),
    "license_expression": dist.metadata.get("License-Expression"),
    "license_file": bool(lic) and "Apache License" in lic[0].read_text(),
    "frameworks": [m for m in %r if importlib.util.find_spec(m) is not None],
    "plugin_loads": md.entry_points(group="tensorboard_plugins")["archviz"].load().__name__,
}))
""" % (FRAMEWORKS,)

# Run in the main environment: a logdir written by the Keras and PyTorch writers.
WRITE_LOGS = r"""
import sys, numpy as np
logdir = sys.argv[1]
import keras
from tensorboard_archviz import ArchVizCallback
m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
                      keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="head")])
m.compile("adam", "sparse_categorical_crossentropy")
m.fit(np.random.rand(16, 8, 8, 1).astype("float32"), np.random.randint(0, 3, 16), epochs=1,
      verbose=0, callbacks=[ArchVizCallback(log_dir=logdir + "/keras")])
import torch
from torch.utils.tensorboard import SummaryWriter
import tensorboard_archviz as tav
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                          torch.nn.Linear(144, 3))
x = torch.randn(2, 1, 8, 8)
with SummaryWriter(logdir + "/torch") as w:
    tav.add_architecture(w, net, x, global_step=0)
    tav.add_filter_grids(w, net, ["0"], global_step=0, input_to_model=x, steps=4)
    if hasattr(tav, "add_layer_signals"):
        net(x).sum().backward()
        tav.add_layer_signals(w, net, 0, input_to_model=x)
"""


def _run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert p.returncode == 0, "%s failed (%d):\n%s\n%s" % (cmd, p.returncode, p.stdout[-3000:],
                                                         p.stderr[-3000:])
    return p.stdout


def _venv(path, *packages, env=None):
    _run([sys.executable, "-m", "venv", str(path)])
    py = str(path / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-input",
          "tensorboard==" + dist_version("tensorboard")] + [str(p) for p in packages],
         env=env, timeout=900)
    return py


def _check(py):
    return json.loads(_run([py, "-c", CHECK], cwd="/").strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, ARCHVIZ_SKIP_FRONTEND_BUILD="1")
    _run([sys.executable, "-m", "build", "--outdir", str(out), ROOT], env=env, timeout=900)
    wheel = next(out.glob("tensorboard_archviz-*.whl"))
    sdist = next(out.glob("tensorboard_archviz-*.tar.gz"))
    return wheel, sdist


@pytest.fixture(scope="module")
def viewer(tmp_path_factory, dist):
    """A virtualenv with only tensorboard and the wheel: its python."""
    return _venv(tmp_path_factory.mktemp("viewer") / "venv", dist[0])


def test_wheel_carries_only_what_runs(dist):
    wheel, _ = dist
    assert wheel.name == "tensorboard_archviz-%s-py3-none-any.whl" % VERSION
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"tensorboard_archviz", "tensorboard_archviz-%s.dist-info" % VERSION}
    assert "tensorboard_archviz/static/index.js" in names
    assert "tensorboard_archviz/static/layout_worker.js" in names
    assert not [n for n in names if n.endswith(".ts") or "/tests/" in n or n.startswith("bench")]
    assert "tensorboard_archviz-%s.dist-info/licenses/LICENSE" % VERSION in names


def test_sdist_carries_the_built_dashboard(dist):
    _, sdist = dist
    names = tarfile.open(sdist).getnames()
    base = "tensorboard_archviz-%s/" % VERSION
    for must in ("tensorboard_archviz/static/index.js", "LICENSE", "CHANGELOG.md",
                 "pyproject.toml", "frontend/package-lock.json"):
        assert base + must in names, must
    assert not [n for n in names if n.startswith(base + "tests/") or "node_modules" in n]


def test_wheel_installs_in_a_fresh_virtualenv(viewer):
    got = _check(viewer)
    assert got["version"] == got["metadata_version"] == VERSION
    assert {"index.js", "layout_worker.js"} <= set(got["static"])
    assert ["tensorboard_plugins", "archviz", "tensorboard_archviz.plugin:ArchVizPlugin"] in \
        got["entry_points"]
    assert ["console_scripts", "archviz", "tensorboard_archviz.cli:main"] in got["entry_points"]
    assert got["license_expression"] == "Apache-2.0" and got["license_file"]
    assert got["frameworks"] == []  # viewer-only: no TensorFlow, Keras, torch or JAX
    assert got["plugin_loads"] == "ArchVizPlugin"


def test_sdist_installs_without_node(tmp_path, dist):
    _, sdist = dist
    bare = tmp_path / "bin"
    bare.mkdir()
    path = "%s:%s" % (tmp_path / "venv" / "bin", bare)
    assert shutil.which("npm", path=path) is None and shutil.which("node", path=path) is None
    env = {k: v for k, v in os.environ.items() if k not in ("ARCHVIZ_SKIP_FRONTEND_BUILD",)}
    env["PATH"] = path
    py = _venv(tmp_path / "venv", sdist, env=env)
    got = _check(py)
    assert got["version"] == VERSION and {"index.js", "layout_worker.js"} <= set(got["static"])
    assert got["license_expression"] == "Apache-2.0" and got["license_file"]


def _documents(url):
    """Every route's answer a viewer needs, as comparable values."""
    _, runs = get_json(url + PLUGIN + "/runs")
    out = {"runs": sorted(runs)}
    for run in sorted(runs):
        status, arch = get_json(url + PLUGIN + "/architecture?run=" + run)
        out["architecture " + run] = (status, arch)
    status, filt = get_json(url + PLUGIN + "/filters?run=torch&layer=0")
    out["filters"] = status
    png = http_get(url + PLUGIN + "/" + filt["image_url"])
    out["png"] = (png[0], png[1][:8])
    if runs["torch"].get("signals"):
        status, sig = get_json(url + PLUGIN + "/signals?run=torch")
        out["signals"] = (status, sig)
    return out


def test_viewer_only_install_serves_logs_written_elsewhere(tmp_path, viewer, browser):
    logdir = tmp_path / "logs"
    _run([sys.executable, "-c", WRITE_LOGS, str(logdir)], timeout=600,
         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    with run_tensorboard(logdir) as main_url:
        wait_for_run(main_url, "keras/train")
        wait_for_run(main_url, "torch")
        expected = _documents(main_url)
    with run_tensorboard(logdir, python=viewer) as url:
        wait_for_run(url, "keras/train")
        wait_for_run(url, "torch")
        got = _documents(url)
        assert got == expected
        assert got["architecture torch"][0] == 200 and got["filters"] == 200
        assert got["png"] == (200, b"\x89PNG\r\n\x1a\n")
        assert got["architecture torch"][1]["model"]["total_params"] == 4 * 9 + 4 + 144 * 3 + 3
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            frame = open_archviz(page, url)
            frame.wait_for_function("document.body.innerText.includes('Total params')",
                                    timeout=60000)
            assert "keras/train" in frame.evaluate("document.body.innerText") or \
                "torch" in frame.evaluate("document.body.innerText")
        finally:
            page.close()
    archviz = os.path.join(os.path.dirname(viewer), "archviz")
    for run, names in (("keras/train", ("conv", "head")), ("torch", ("Conv2d", "Linear"))):
        table = _run([archviz, "summary", str(logdir), "--run", run], cwd="/")
        assert all(n in table for n in names), table
        assert "475" in table.replace(",", ""), table
