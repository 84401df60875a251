"""The demo notebook runs headless (nbclient): it trains the LeNet, `%tensorboard` starts a real
TensorBoard, and that TensorBoard serves the architecture through the plugin."""

import os
import signal
import time


from conftest import PLUGIN, free_port, get_json, open_archviz, wait_for_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_notebook_runs_and_tensorboard_serves_architecture(tmp_path, page):
    import nbformat
    from nbclient import NotebookClient
    from tensorboard import manager

    logdir = str(tmp_path / "nb_logs")
    port = free_port()
    env_before = dict(os.environ)
    os.environ.update({"ARCHVIZ_LOGDIR": logdir, "ARCHVIZ_PORT": str(port),
                       "ARCHVIZ_EPOCHS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    nb = nbformat.read(os.path.join(ROOT, "demo", "archviz.ipynb"), as_version=4)
    info = None
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": ROOT}})
    try:
        # The kernel must stay alive while we look: %tensorboard's server is its child process.
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            outputs = "".join(str(o) for c in nb.cells if c.cell_type == "code"
                              for o in c.get("outputs", []))
            assert "params: 1256080" in outputs
            assert "<iframe" in outputs and "const port = %d" % port in outputs
            deadline = time.time() + 60
            while info is None and time.time() < deadline:
                info = next((i for i in manager.get_all() if i.port == port), None)
                time.sleep(0.5)
            assert info is not None, "the notebook's TensorBoard is not running"
            url = "http://127.0.0.1:%d" % port
            wait_for_run(url, "lenet/train")
            status, arch = get_json(url + PLUGIN + "/architecture?run=lenet/train")
            assert status == 200
            assert arch["model"]["total_params"] == 1256080
            frame = open_archviz(page, url)
            frame.wait_for_selector("text=1,225,500", timeout=30000)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
        if info is not None:
            try:
                os.kill(info.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
