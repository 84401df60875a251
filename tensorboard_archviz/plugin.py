"""ArchVizPlugin: the TensorBoard plugin serving architectures, filter grids, diffs and layer
signals.

All data is read through ``context.data_provider`` (never from event files directly), so the
plugin works with both loaders (``--load_fast=true`` / ``false``) and with any data provider.
Routes parse the request and shape the answer; reading and checking stored data is ``reader``'s
(and ``signal_series``'s). Every route answers JSON errors ``{"error": "..."}``: 400 for a
malformed request, 404 for an unknown run/step/layer, 422 for stored data that cannot be
decoded. See ``http_api.md``.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
import os
import re
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

from werkzeug import wrappers

from tensorboard import errors as tb_errors
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin

from tensorboard_archviz import metadata, reader, signal_series

logger = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

_MAX_PARAM_LENGTH = 4096


RequestError = reader.ReadError  # answered as JSON {"error": ...} with its HTTP code


def _unreadable(message: str) -> RequestError:
    return RequestError(422, message)


def _json_route(method):
    """Wraps a route: parses nothing, turns every error into a JSON answer, never a traceback."""

    @functools.wraps(method)
    @wrappers.Request.application
    def wrapper(self, request):
        try:
            return method(self, request)
        except RequestError as e:
            return _error_response(request, e.code, e.message)
        except tb_errors.PublicError as e:
            return _error_response(request, e.http_code, str(e))
        except Exception:  # a bug of ours: log it, answer without internals
            logger.exception("archviz: unexpected error serving %s", request.path)
            return _error_response(request, 500, "internal error in the archviz plugin")

    return wrapper


def _error_response(request, code: int, message: str):
    return http_util.Respond(request, {"error": message}, "application/json", code=code)


def _json_response(request, data: Any):
    return http_util.Respond(request, data, "application/json")


def _document_response(request, doc: reader.Document):
    """A cached answer: 304 when the request's If-None-Match holds its ETag, else the gzip
    bytes as they are (unzipped on the fly when the client does not accept gzip); the browser
    keeps it and revalidates (Cache-Control: no-cache)."""
    headers = [("ETag", doc.etag)]
    if request.if_none_match.contains_weak(doc.etag.strip('"')):
        return wrappers.Response(status=304, headers=headers + [
            ("Cache-Control", "no-cache, must-revalidate"), ("Expires", "0")])
    return http_util.Respond(request, doc.gzipped, "application/json", content_encoding="gzip",
                             headers=headers)


# ---------------------------------------------------------------------------------------------
# request parameters

def _param(request, name: str, required: bool = True) -> Optional[str]:
    value = request.args.get(name)
    if value is None or value == "":
        if required:
            raise RequestError(400, "missing required parameter %r" % name)
        return None
    if len(value) > _MAX_PARAM_LENGTH:
        raise RequestError(400, "parameter %r is too long (%d characters)" % (name, len(value)))
    return value


def _step_param(request, name: str = "step") -> Optional[int]:
    value = _param(request, name, required=False)
    return None if value is None else reader.parse_step(value, name)


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    value = _param(request, name, required=False)
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", value) or not low <= int(value) <= high:
        raise RequestError(400, "parameter %r must be an integer from %d to %d, got %r"
                           % (name, low, high, value))
    return int(value)


def _step_fields(step: int) -> Dict[str, Any]:
    return {"step": step, "step_string": reader.step_string(step)}


# ---------------------------------------------------------------------------------------------

class ArchVizPlugin(base_plugin.TBPlugin):
    """Serves the Arch Viz tab: architectures, filter grids and diffs over the data provider."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._data_provider = context.data_provider
        self._downsample = (context.sampling_hints or {}).get(
            self.plugin_name, reader.DEFAULT_DOWNSAMPLE)
        self._reader = reader.ArchitectureReader(self._data_provider, self._downsample)
        self._signals = signal_series.SignalsReader(self._data_provider, self._reader)

    # -- TBPlugin interface --------------------------------------------------------------------
    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_index_js,
            "/static/*": self._serve_static,
            "/runs": self._serve_runs,
            "/architecture": self._serve_architecture,
            "/timeline": self._serve_timeline,
            "/filters": self._serve_filters,
            "/filters_image": self._serve_filters_image,
            "/diff": self._serve_diff,
            "/signals": self._serve_signals,
        }

    def is_active(self):
        return False  # the data provider's list_plugins() tells TensorBoard when we have data

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Arch Viz")

    # -- static files --------------------------------------------------------------------------
    @wrappers.Request.application
    def _serve_index_js(self, request):
        return self._static_file(request, "index.js")

    @wrappers.Request.application
    def _serve_static(self, request):
        name = request.path.rsplit("/", 1)[-1]
        return self._static_file(request, name)

    def _static_file(self, request, name: str):
        # Only plain file names that exist in static/: no separators, no dot-files, no "..".
        try:
            available = set(os.listdir(STATIC_DIR))
        except OSError:
            available = set()
        if not name or name.startswith(".") or name not in available:
            if name == "index.js" and not available:
                return _error_response(
                    request, 404, "the Arch Viz dashboard is not built: run `npm run build` in "
                    "frontend/ (pip install builds it)")
            return _error_response(request, 404, "no such file")
        path = os.path.join(STATIC_DIR, name)
        with open(path, "rb") as f:
            content = f.read()
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".js"):
            mimetype = "text/javascript"
        return http_util.Respond(request, content, mimetype)

    # -- data access ---------------------------------------------------------------------------
    def _ctx(self, request):
        from tensorboard import plugin_util

        return (plugin_util.context(request.environ), plugin_util.experiment_id(request.environ))

    def _filter_datum(self, request) -> Tuple[Any, str, str, Any, List[Any]]:
        ctx, eid = self._ctx(request)
        run = _param(request, "run")
        layer = _param(request, "layer")
        step = _step_param(request)
        datums = reader.filter_series(self._data_provider, ctx, eid, run, layer,
                                      self._downsample)
        if not datums:
            raise RequestError(404, "run %r has no filter grids for layer %r" % (run, layer))
        datum = reader.pick_step(datums, step,
                                 "the filter grid of layer %r in run %r" % (layer, run))
        return ctx, run, layer, datum, datums

    # -- routes --------------------------------------------------------------------------------
    @_json_route
    def _serve_runs(self, request):
        ctx, eid = self._ctx(request)
        runs: Dict[str, Dict[str, Any]] = {}

        def entry(run: str) -> Dict[str, Any]:
            return runs.setdefault(run, {"steps": [], "filter_layers": [], "errors": [],
                                         "step_strings": []})

        for run, index in self._reader.runs(ctx, eid).items():
            runs[run] = {"steps": index.steps, "filter_layers": [], "errors": list(index.errors),
                         "step_strings": [reader.step_string(s) for s in index.steps]}
        blobs = self._data_provider.list_blob_sequences(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME)
        for run, tags in blobs.items():
            layers = sorted(filter(None, (metadata.layer_from_filters_tag(t) for t in tags)))
            if layers:
                entry(run)["filter_layers"] = layers
        for run in self._signals.listing(ctx, eid):
            entry(run)["signals"] = True
        return _json_response(request, runs)

    @_json_route
    def _serve_architecture(self, request):
        ctx, eid = self._ctx(request)
        doc = self._reader.document(ctx, eid, _param(request, "run"), _step_param(request))
        return _document_response(request, doc)

    @_json_route
    def _serve_timeline(self, request):
        ctx, eid = self._ctx(request)
        return _json_response(request, self._reader.timeline(ctx, eid, _param(request, "run")))

    @_json_route
    def _serve_filters(self, request):
        ctx, run, layer, datum, datums = self._filter_datum(request)
        what = "filter grid of layer %r in run %r at step %s" % (
            layer, run, reader.step_string(datum.step))
        values = list(datum.values)
        if len(values) <= metadata.FILTERS_META_INDEX:
            raise _unreadable("%s has no tile metadata" % what)
        raw = reader.read_blob(self._data_provider, ctx, values[metadata.FILTERS_META_INDEX],
                               "the tile metadata of the %s" % what, (run, layer))
        tiles = reader.parse_tiles(raw, what)
        try:
            png = reader.read_blob(self._data_provider, ctx, values[metadata.FILTERS_PNG_INDEX],
                                   "the image of the " + what, (run, layer))
            problem = reader.png_problem(png)
        except RequestError as e:
            png, problem = b"", e.message
        answer = reader.check_layout(tiles, reader.png_size(png) if problem is None else None,
                                     problem)
        steps = sorted({d.step for d in datums})
        answer.update(_step_fields(datum.step))
        answer.update({
            "run": run, "layer": layer, "wall_time": datum.wall_time, "steps": steps,
            "step_strings": [reader.step_string(s) for s in steps],
            "image_url": "filters_image?" + urllib.parse.urlencode(
                {"run": run, "layer": layer, "step": reader.step_string(datum.step)}),
        })
        return _json_response(request, answer)

    @_json_route
    def _serve_filters_image(self, request):
        ctx, run, layer, datum, _ = self._filter_datum(request)
        values = list(datum.values)
        if len(values) <= metadata.FILTERS_PNG_INDEX:
            raise _unreadable("filter grid of layer %r in run %r has no image" % (layer, run))
        what = "filter grid of layer %r in run %r at step %s" % (
            layer, run, reader.step_string(datum.step))
        png = reader.read_blob(self._data_provider, ctx, values[metadata.FILTERS_PNG_INDEX],
                               "the image of the " + what, (run, layer))
        problem = reader.png_problem(png)
        if problem is not None:
            raise _unreadable("%s is not a PNG image: %s" % (what, problem))
        return http_util.Respond(request, png, "image/png")

    @_json_route
    def _serve_diff(self, request):
        from tensorboard_archviz import diff as diff_lib

        ctx, eid = self._ctx(request)
        run_a, run_b = _param(request, "run_a"), _param(request, "run_b")
        step_a, arch_a = self._reader.load(ctx, eid, run_a, _step_param(request, "step_a"))
        step_b, arch_b = self._reader.load(ctx, eid, run_b, _step_param(request, "step_b"))
        answer = diff_lib.diff_architectures(arch_a, arch_b)
        answer["a"] = dict(run=run_a, **_step_fields(step_a))
        answer["b"] = dict(run=run_b, **_step_fields(step_b))
        return _json_response(request, answer)

    @_json_route
    def _serve_signals(self, request):
        ctx, eid = self._ctx(request)
        run = _param(request, "run")
        signal = _param(request, "signal", required=False)
        if signal is not None and not signal_series.known_key(signal):
            raise RequestError(400, "parameter 'signal' is not a signal key: %r" % signal)
        max_steps = _int_param(request, "max_steps", signal_series.DEFAULT_MAX_STEPS, 1,
                               signal_series.MAX_STEPS_LIMIT)
        return _document_response(request,
                                  self._signals.document(ctx, eid, run, signal, max_steps))
