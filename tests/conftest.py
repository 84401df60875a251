"""Shared fixtures: a real TensorBoard subprocess and a real (Debian) Chromium driven by Playwright.

- ``tb_server(logdir, load_fast=True, extra_args=())`` — context manager factory; starts
  ``tensorboard`` on a free 127.0.0.1 port, waits until it answers and the archviz plugin is
  listed, yields the base URL (no trailing slash) and stops the process on exit.
- ``wait_for_run(url, run, timeout=60, steps=None)`` — polls ``/data/plugin/archviz/runs``
  until `run` is listed (with at least `steps` steps when given); returns the runs JSON.
- ``browser`` (session) / ``page`` (function) — headless Chromium at /usr/bin/chromium.
- ``get_json(url)`` — (status, decoded JSON) for a GET, without raising on 4xx/5xx.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

CHROMIUM = os.environ.get("ARCHVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PLUGIN = "/data/plugin/archviz"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 30):
    """(status, body bytes, headers) for a GET; never raises on an HTTP error status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def get_json(url: str, timeout: float = 30):
    status, body, _ = http_get(url, timeout)
    try:
        return status, json.loads(body.decode("utf-8"))
    except ValueError:
        return status, body


@contextlib.contextmanager
def run_tensorboard(logdir, load_fast=True, extra_args=(), timeout=90, path_prefix="",
                    python=sys.executable):
    """Start a real TensorBoard (of the environment of `python`); yields its base URL (with
    `path_prefix`, no trailing slash)."""
    port = free_port()
    cmd = [python, "-m", "tensorboard.main", "--logdir", str(logdir),
           "--host", "127.0.0.1", "--port", str(port),
           "--load_fast=%s" % ("true" if load_fast else "false"),
           "--reload_interval", "1"] + list(extra_args)
    if path_prefix:
        cmd.append("--path_prefix=" + path_prefix)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d%s" % (port, path_prefix.rstrip("/"))
    deadline = time.time() + timeout
    try:
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode("utf-8", "replace")
                raise RuntimeError("tensorboard exited with %s:\n%s" % (proc.returncode, out))
            try:
                status, listing = get_json(url + "/data/plugins_listing", timeout=5)
                if status == 200 and "archviz" in listing:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("tensorboard did not start within %ss" % timeout)
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def tb_server():
    """Factory fixture: ``with tb_server(logdir, load_fast=True) as url: ...``."""
    return run_tensorboard


def wait_for_run(url, run, timeout=60, steps=None, filter_layers=None):
    """Poll the runs route until `run` appears (with `steps` steps / `filter_layers` layers)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        status, runs = get_json(url + PLUGIN + "/runs")
        last = (status, runs)
        if status == 200 and run in runs:
            info = runs[run]
            ok = steps is None or len(info.get("steps", [])) >= steps
            ok = ok and (filter_layers is None
                         or len(info.get("filter_layers", [])) >= filter_layers)
            if ok:
                return runs
        time.sleep(0.5)
    raise AssertionError("run %r did not appear in time; last answer: %r" % (run, last))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed at %s (apt-get install -y chromium)" % CHROMIUM)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30000)
    try:
        yield pg
    finally:
        context.close()


def open_archviz(page, url, timeout=60):
    """Open the Arch Viz tab like a user does; returns the frame of the plugin's iframe.

    Waits with Playwright's own timer (so frame events are processed meanwhile) and reloads the
    page once if TensorBoard has not created the plugin's iframe halfway through the timeout.
    """
    page.goto(url + "/#archviz")
    deadline = time.time() + timeout
    reloaded = False
    while time.time() < deadline:
        for frame in page.frames:
            if "plugin_entry.html" in frame.url and "archviz" in frame.url:
                return frame
        if not reloaded and time.time() > deadline - timeout / 2:
            reloaded = True
            page.reload()
        page.wait_for_timeout(200)
    raise AssertionError("the Arch Viz iframe did not load; frames: %r"
                         % [f.url for f in page.frames])
