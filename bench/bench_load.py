"""Benchmark: the plugin's routes under a bounded concurrent load, against a real TensorBoard.

    python bench/bench_load.py [--runs 100] [--threads 8] [--seconds 20] [--loaders fast,legacy]

A log directory of ``--runs`` runs is generated with ArchVizWriter (no framework needed): each
run holds an architecture at steps 0 and 1 (step 1 widens one layer, so diffs have content) and
one or two filter grids (real PNGs). Sizes are mixed: a third small (5 layers), a third medium
(60 layers in 6 blocks) and a third large (600 layers in 30 nested blocks, ~190 KB of JSON).
For each loader (``--load_fast=true`` / ``false``) a TensorBoard is started on loopback; once
every run is listed, ``--threads`` client threads send requests for ``--seconds`` seconds,
cycling over the routes (runs, architecture, filters, filters_image, diff, index.js) with random
runs and steps. Printed per route: requests, requests/s, p50 / p99 latency (ms) and errors
(any answer but 200, or a failed connection). Target: 0 errors.

Client and server share the machine (and, here, two cores with other jobs): the figures are a
floor for a dedicated machine, not a capacity plan.

Timeline (``--timeline-steps 100 --timeline-nodes 5000``; ``--timeline-steps 0`` skips it): one
run with an architecture of about that many nodes written at every step (one layer widened every
10 steps, so some steps change and most do not), served by the default (Rust) loader with
``--samples_per_plugin=archviz=<steps>``. Printed side by side: the ``timeline`` route (cold,
then warm), the old way for the first half of the listed steps (one ``diff`` request per
consecutive pair, as the dashboard did before the route), per step, and TensorBoard's resident
memory (the Python process plus its data server) after each. Run it with two step counts (e.g.
50 and 100) to see the time per step stay flat.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tensorboard_archviz import schema  # noqa: E402
from tensorboard_archviz import summary as summary_lib  # noqa: E402
from tensorboard_archviz.summary import ArchVizWriter  # noqa: E402

PLUGIN = "/data/plugin/archviz"
ROUTES = ["runs", "architecture", "filters", "filters_image", "diff", "index.js"]


# -- the log directory -----------------------------------------------------------------------------

def make_arch(name: str, blocks: int, per_block: int, widen: bool) -> schema.Architecture:
    """A chain of `blocks` containers, each holding `per_block` Dense-like layers."""
    nodes = [schema.Node("input", "input", "InputLayer", output_shapes=[[None, 64]],
                         input_shapes=[[None, 64]], dtype="float32")]
    edges = []
    prev, width, total = "input", 64, 0
    for b in range(blocks):
        block = "block_%d" % b
        nodes.append(schema.Node(block, block, "Sequential", dtype="float32"))
        block_params = 0
        for i in range(per_block):
            units = 64 + (8 if widen and b == 0 and i == 0 else 0)
            nid = "%s/dense_%d" % (block, i)
            params = width * units + units
            nodes.append(schema.Node(
                nid, "dense_%d" % i, "Dense", parent=block, input_shapes=[[None, width]],
                output_shapes=[[None, units]], dtype="float32",
                params={"trainable": params, "non_trainable": 0}, activation="relu",
                config={"units": units, "use_bias": True}, macs=width * units))
            edges.append(schema.Edge(prev, nid, [None, width]))
            prev, width = nid, units
            block_params += params
        nodes[-per_block - 1].params = {"trainable": block_params, "non_trainable": 0}
        total += block_params
    return schema.Architecture(
        "keras", "3.15.1", schema.ModelInfo(name, "Functional", total, total, 0),
        inputs=["input"], outputs=[prev], nodes=nodes, edges=edges)


def make_grid(n_filters: int, tile: int, seed: int):
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(n_filters)))
    rows = -(-n_filters // cols)
    margin = 2
    img = np.full((rows * (tile + margin) + margin, cols * (tile + margin) + margin, 3), 255,
                  np.uint8)
    tiles = []
    for i in range(n_filters):
        r, c = divmod(i, cols)
        y, x = margin + r * (tile + margin), margin + c * (tile + margin)
        img[y:y + tile, x:x + tile] = rng.integers(0, 256, (tile, tile, 3), dtype=np.uint8)
        tiles.append({"index": i, "score": float(rng.normal()), "post_score": 0.0,
                      "dead": False, "row": r, "col": c})
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, "PNG")
    return buf.getvalue(), {"tile_size": tile, "margin": margin, "rows": rows, "cols": cols,
                            "channels": 3, "value_range": [0, 1], "tiles": tiles}


SIZES = {"small": (1, 4), "medium": (6, 10), "large": (30, 20)}


def build_logdir(root: str, runs: int) -> dict:
    """Write the runs; returns {run: [filter layers]} and prints what was written."""
    t0 = time.perf_counter()
    layout, json_bytes, png_bytes = {}, 0, 0
    grids = [make_grid(16, 32, 0), make_grid(64, 32, 1)]
    for i in range(runs):
        kind = ("small", "medium", "large")[i % 3]
        blocks, per_block = SIZES[kind]
        run = "run_%03d_%s" % (i, kind)
        layers = ["block_0/dense_0"] if i % 2 else ["block_0/dense_0", "block_0/dense_1"]
        with ArchVizWriter(os.path.join(root, run)) as w:
            for step in (0, 1):
                arch = make_arch(run, blocks, per_block, widen=step == 1)
                json_bytes += len(arch.to_json())
                w.add_architecture(arch, step=step)
            for k, layer in enumerate(layers):
                png, tiles = grids[k]
                png_bytes += len(png)
                w.add_filter_grid(layer, png, tiles, step=1)
        layout[run] = layers
    print("generated %d runs in %.1f s: %.1f MB of architecture JSON, %.1f MB of PNG"
          % (runs, time.perf_counter() - t0, json_bytes / 1e6, png_bytes / 1e6))
    return layout


# -- TensorBoard -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 60):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class TensorBoard:
    def __init__(self, logdir: str, load_fast: bool, samples: int = 100):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1",
             "--port", str(self.port), "--load_fast=%s" % ("true" if load_fast else "false"),
             "--reload_interval", "5", "--samples_per_plugin=archviz=%d" % samples],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_steps(self, run: str, last: int, timeout: float = 1800) -> dict:
        """Poll the runs route until `run` lists step `last`; returns its entry."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tensorboard exited with %s" % self.proc.returncode)
            try:
                status, body = get(self.url + PLUGIN + "/runs", timeout=900)
                info = json.loads(body).get(run, {}) if status == 200 else {}
                if info.get("steps", [None])[-1:] == [last]:
                    return info
            except OSError:
                pass
            time.sleep(2)
        raise RuntimeError("tensorboard did not list step %d of %r within %ss"
                           % (last, run, timeout))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the load --------------------------------------------------------------------------------------

def request_for(route: str, rng: random.Random, layout: dict) -> str:
    runs = list(layout)
    run = rng.choice(runs)
    if route == "runs":
        return "runs"
    if route == "index.js":
        return "index.js"
    if route == "architecture":
        return "architecture?" + urllib.parse.urlencode({"run": run, "step": rng.choice((0, 1))})
    if route in ("filters", "filters_image"):
        params = {"run": run, "layer": rng.choice(layout[run])}
        if rng.random() < 0.5:
            params["step"] = 1
        return route + "?" + urllib.parse.urlencode(params)
    other = rng.choice(runs)
    return "diff?" + urllib.parse.urlencode({"run_a": run, "step_a": 0, "run_b": other,
                                             "step_b": 1})


def run_load(url: str, layout: dict, threads: int, seconds: float, seed: int = 0):
    lat = collections.defaultdict(list)
    errors = collections.Counter()
    examples = {}
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        i = k
        while time.perf_counter() < stop_at:
            route = ROUTES[i % len(ROUTES)]
            i += 1
            path = request_for(route, rng, layout)
            t0 = time.perf_counter()
            try:
                status, body = get(url + PLUGIN + "/" + path)
                ok = status == 200
                err = None if ok else "HTTP %d %s" % (status, body[:120])
            except OSError as e:
                ok, err = False, "%s: %s" % (type(e).__name__, e)
            dt = time.perf_counter() - t0
            with lock:
                lat[route].append(dt)
                if not ok:
                    errors[route] += 1
                    examples.setdefault(route, err)

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - t0, lat, errors, examples


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100.0 * (len(s) - 1))))]


def report(name: str, ready_s: float, elapsed: float, lat, errors, examples) -> int:
    total = sum(len(v) for v in lat.values())
    print("\n%s: every run listed %.1f s after start; %d requests in %.1f s = %.1f req/s, "
          "%d errors" % (name, ready_s, total, elapsed, total / elapsed, sum(errors.values())))
    print("  %-14s %8s %8s %9s %9s %7s" % ("route", "requests", "req/s", "p50 ms", "p99 ms",
                                          "errors"))
    for route in ROUTES:
        v = lat.get(route, [])
        if not v:
            continue
        print("  %-14s %8d %8.1f %9.1f %9.1f %7d" % (
            route, len(v), len(v) / elapsed, 1000 * statistics.median(v), 1000 * pct(v, 99),
            errors[route]))
    for route, err in examples.items():
        print("  first error on %s: %s" % (route, err))
    return sum(errors.values())


# -- the timeline ------------------------------------------------------------------------------------

def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (TensorBoard + its Rust data server), MB."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                             text=True).stdout
        pids += [int(x) for x in out.split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


def renamed(arch: schema.Architecture, step: int) -> schema.Architecture:
    """`arch` with every node id (and name) renamed for `step`, as a new Keras session does."""
    import copy

    new = copy.deepcopy(arch)
    ids = {n.id: "%s_%d" % (n.id, step) for n in new.nodes}
    for n in new.nodes:
        n.id, n.name = ids[n.id], "%s_%d" % (n.name, step)
        n.parent = ids.get(n.parent, n.parent)
    for e in new.edges:
        e.source, e.target = ids[e.source], ids[e.target]
    new.inputs = [ids[i] for i in new.inputs]
    new.outputs = [ids[o] for o in new.outputs]
    return new


def build_timeline_logdir(root: str, steps: int, nodes: int, rename: bool = False) -> int:
    """One run "tl" with an architecture of ~`nodes` nodes at every step (every id renamed at
    each step with `rename`); returns JSON bytes."""
    per_block = 50
    arch = make_arch("tl", max(1, nodes // (per_block + 1)), per_block, widen=False)
    node = arch.nodes[2]
    base = dict(node.config)
    size = 0
    with ArchVizWriter(os.path.join(root, "tl")) as w:
        for step in range(steps):
            node.config = dict(base, units=64 + step // 10)  # a layer widens every 10 steps
            pb = summary_lib.architecture_pb(renamed(arch, step) if rename else arch)
            size = pb.value[0].tensor.ByteSize()
            w.add_summary(pb, step)
    return size


def timeline_half(url: str, listed: list) -> float:
    """The old client's way for the first half of the listed steps: one diff per pair."""
    t0 = time.perf_counter()
    half = listed[:len(listed) // 2]
    for a, b in zip(half, half[1:]):
        status, body = get(url + PLUGIN + "/diff?" + urllib.parse.urlencode(
            {"run_a": "tl", "step_a": a, "run_b": "tl", "step_b": b}), timeout=600)
        if status != 200:
            raise RuntimeError("diff answered %d: %s" % (status, body[:200]))
    return time.perf_counter() - t0


def run_timeline(steps: int, nodes: int, rename: bool = False) -> None:
    root = tempfile.mkdtemp(prefix="archviz_bench_timeline_")
    try:
        size = build_timeline_logdir(root, steps, nodes, rename)
        tb = TensorBoard(root, load_fast=True, samples=steps)
        try:
            t0 = time.perf_counter()
            info = tb.wait_steps("tl", steps - 1)
            print("\ntimeline: %d steps of a %d-node architecture (%.2f MB of JSON each%s); %d "
                  "listed %.1f s after start%s; TensorBoard RSS %.0f MB"
                  % (steps, nodes, size / 1e6, ", every id renamed at each step" if rename
                     else "", len(info["steps"]), time.perf_counter() - t0,
                     " (%s)" % info["errors"][0][:150] if info.get("errors") else "",
                     rss_mb(tb.proc.pid)))
            # the route spends at most its time budget per request on new pairs (a partial
            # answer says so) and caches them: request until complete, then once more (warm)
            label, partial, total = "cold", True, 0.0
            for k in range(100):
                t0 = time.perf_counter()
                status, body = get(tb.url + PLUGIN + "/timeline?run=tl", timeout=900)
                dt = time.perf_counter() - t0
                total += dt if partial else 0.0
                answer = json.loads(body) if status == 200 else {}
                entries = answer.get("entries", [])
                changed = sum(1 for e in entries if e.get("identical") is False)
                pending = sum(1 for e in entries if e.get("pending"))
                print("  timeline route (%s): HTTP %d, %d entries (%d changed, %d pending) in "
                      "%.2f s = %.1f ms/step; RSS %.0f MB"
                      % (label, status, len(entries), changed, pending, dt,
                         1000 * dt / max(1, len(entries)), rss_mb(tb.proc.pid)))
                if label == "warm" or status != 200:
                    break
                partial = answer.get("partial", False)
                label = "continued" if partial else "warm"
            print("  complete after %.2f s of requests (each bounded by the route's budget)"
                  % total)
            n = len(info["steps"]) // 2
            half = timeline_half(tb.url, info["steps"])
            print("  old way, one diff request per pair for the first %d listed steps: %.2f s = "
                  "%.1f ms/step; RSS %.0f MB" % (n, half, 1000 * half / max(1, n - 1),
                                                 rss_mb(tb.proc.pid)))
        finally:
            tb.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--loaders", default="fast,legacy")
    ap.add_argument("--logdir", help="keep the generated logs here (default: a temp dir)")
    ap.add_argument("--timeline-steps", type=int, default=100,
                    help="steps of the timeline benchmark (0: skip it)")
    ap.add_argument("--timeline-nodes", type=int, default=5000)
    ap.add_argument("--timeline-rename", action="store_true",
                    help="rename every node id at each step (the structural matcher's worst case)")
    ap.add_argument("--timeline-only", action="store_true", help="skip the load benchmark")
    args = ap.parse_args()
    if args.timeline_steps:
        run_timeline(args.timeline_steps, args.timeline_nodes, args.timeline_rename)
    if args.timeline_only:
        return 0

    root = args.logdir or tempfile.mkdtemp(prefix="archviz_bench_load_")
    os.makedirs(root, exist_ok=True)
    total_errors = 0
    try:
        layout = build_logdir(root, args.runs)
        print("load: %d threads for %.0f s per loader, routes cycled: %s"
              % (args.threads, args.seconds, ", ".join(ROUTES)))
        for loader in args.loaders.split(","):
            tb = TensorBoard(root, load_fast=(loader == "fast"))
            try:
                ready = tb.wait_ready(layout)
                get(tb.url + PLUGIN + "/runs")   # warm-up
                elapsed, lat, errors, examples = run_load(tb.url, layout, args.threads,
                                                          args.seconds)
                total_errors += report("--load_fast=%s" % ("true" if loader == "fast"
                                                           else "false"),
                                       ready, elapsed, lat, errors, examples)
            finally:
                tb.stop()
    finally:
        if not args.logdir:
            shutil.rmtree(root, ignore_errors=True)
    print("\ntotal errors: %d (target 0)" % total_errors)
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
