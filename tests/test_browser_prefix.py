"""The tab works behind a path prefix (as behind a notebook proxy): relative URLs only."""

from conftest import PLUGIN, get_json, open_archviz, run_tensorboard, wait_for_run
from tensorboard_archviz import summary
from test_plugin_routes import small_arch


def test_tab_under_path_prefix(tmp_path, page):
    with summary.ArchVizWriter(str(tmp_path / "prefixed")) as w:
        w.add_architecture(small_arch(32), step=0)
    with run_tensorboard(tmp_path, path_prefix="/proxy/6006") as url:
        assert url.endswith("/proxy/6006")
        wait_for_run(url, "prefixed")
        status, _ = get_json(url.replace("/proxy/6006", "") + PLUGIN + "/runs")
        assert status == 404  # nothing is served outside the prefix
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        frame = open_archviz(page, url)
        frame.wait_for_selector("text=25,120", timeout=30000)
        plugin_requests = [u for u in requests if "/data/plugin/archviz/" in u]
        assert plugin_requests, requests
        assert all("/proxy/6006/data/plugin/archviz/" in u for u in plugin_requests), \
            plugin_requests
