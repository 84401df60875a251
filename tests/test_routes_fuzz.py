"""Every parameter of every route fuzzed against a real TensorBoard: 400/404/422 JSON, never a 500."""

import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import PLUGIN, http_get, run_tensorboard, wait_for_run
from tensorboard_archviz import summary
from test_plugin_routes import TILES, png_bytes, small_arch

ROUTES = {
    "architecture": ["run", "step"],
    "timeline": ["run"],
    "filters": ["run", "layer", "step"],
    "filters_image": ["run", "layer", "step"],
    "diff": ["run_a", "step_a", "run_b", "step_b"],
    "runs": [],
    "signals": ["run", "signal", "max_steps"],
}
VALID = {"run": "good", "run_a": "good", "run_b": "good", "layer": "conv2d", "step": "3",
         "step_a": "0", "step_b": "3", "signal": "weights.rms", "max_steps": "2"}

nasty = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "..", "../", "../../etc/passwd", "%00", "\x00", "good\x00", "-1",
                     "1e3", "0x10", " 3", "3 ", "+3", "NaN", "inf", "<script>", "good/../good",
                     "\u202e", "\ud7ff", "9" * 30, "x" * 5000, "good", "conv2d", "3", "\u00b3", "\u0663",
                     "values.", "values.x", "weights.rms", "0"]),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzlogs")
    with summary.ArchVizWriter(str(root / "good")) as w:
        w.add_architecture(small_arch(10), step=0)
        w.add_architecture(small_arch(32), step=3)
        w.add_filter_grid("conv2d", png_bytes(), TILES, step=3)
        for step in (0, 3):
            w.add_summary(summary.signals_pb({"version": 1, "signals": {
                "weights.rms": {"dense": 0.5, "flatten": None}}, "meta": {}}), step=step)
    with run_tensorboard(root, load_fast=True) as url:
        wait_for_run(url, "good", steps=2, filter_layers=1)
        yield url


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(sorted(ROUTES)), data=st.data())
def test_fuzzed_parameters_never_500(server, route, data):
    params = {}
    for name in ROUTES[route]:
        choice = data.draw(st.sampled_from(["valid", "absent", "nasty"]), label=name)
        if choice == "valid":
            params[name] = VALID[name]
        elif choice == "nasty":
            params[name] = data.draw(nasty, label=name + "_value")
    extra = data.draw(st.dictionaries(st.text(min_size=1, max_size=8), nasty, max_size=2),
                      label="extra")
    for k, v in extra.items():
        params.setdefault(k, v)
    query = urllib.parse.urlencode(
        {k: v.encode("utf-8", "surrogatepass") for k, v in params.items()})
    status, body, headers = http_get(server + PLUGIN + "/" + route + "?" + query)
    assert status in (200, 400, 404, 422), (status, body[:300])
    if status != 200:
        assert headers["Content-Type"].startswith("application/json")
        decoded = __import__("json").loads(body)
        assert set(decoded) == {"error"} and decoded["error"]
        assert b"Traceback" not in body and b"File \"" not in body


@pytest.mark.parametrize("path", ["/static/..", "/static/../plugin.py", "/static/%2e%2e/plugin.py",
                                  "/static/..%2fplugin.py", "/static/", "/static/index.js/..",
                                  "/static/%00index.js", "/static/schema.py", "/static/.."
                                  "%2f..%2fsetup.py"])
def test_static_traversal(server, path):
    status, body, _ = http_get(server + PLUGIN + path)
    assert status == 404
    assert b"def " not in body and b"import " not in body
