"""ArchVizPlugin: the TensorBoard plugin serving architectures, filter grids and diffs.

All data is read through ``context.data_provider`` (never from event files directly), so the
plugin works with both loaders (``--load_fast=true`` / ``false``) and with any data provider.
Every route answers JSON errors ``{"error": "..."}``: 400 for a malformed request, 404 for an
unknown run/step/layer, 422 for stored data that cannot be decoded. See ``http_api.md``.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import mimetypes
import os
import struct
import threading
import urllib.parse
import zlib
from typing import Any, Dict, List, Optional, Tuple

from werkzeug import wrappers

from tensorboard import errors as tb_errors
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin

from tensorboard_archviz import metadata, schema

logger = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

# Read every architecture step we are allowed to keep; the loaders' own retention
# (--samples_per_plugin=archviz=N) decides how many there are.
_DEFAULT_DOWNSAMPLING = 1000
_MAX_PARAM_LENGTH = 4096
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What TensorBoard's data providers raise when an event holds a malformed TensorProto
# (tensor_util.make_ndarray: content of the wrong size, a shape that does not match the values)
# or a blob sequence of the wrong rank (an index into a 0-d array): stored data, not our bug.
_DECODE_ERRORS = (ValueError, TypeError, IndexError, KeyError)


class RequestError(Exception):
    """An error answered to the client as JSON with an HTTP status code."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _bad_request(message: str) -> RequestError:
    return RequestError(400, message)


def _not_found(message: str) -> RequestError:
    return RequestError(404, message)


def _unreadable(message: str) -> RequestError:
    return RequestError(422, message)


def _undecodable(what: str, e: Exception) -> RequestError:
    return _unreadable("%s cannot be decoded: %s: %s" % (what, type(e).__name__, e))


def _png_problem(data: bytes) -> Optional[str]:
    """Why `data` is not a complete PNG (signature, IHDR first, chunk lengths and CRCs, IEND), or None."""
    if not data.startswith(_PNG_SIGNATURE):
        return "no PNG signature"
    pos = len(_PNG_SIGNATURE)
    first = True
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if first and kind != b"IHDR":
            return "it does not start with an IHDR chunk"
        first = False
        end = pos + 12 + length
        if end > len(data):
            return "chunk %r is truncated" % kind.decode("latin-1")
        if zlib.crc32(data[pos + 4:pos + 8 + length]) != struct.unpack(">I", data[end - 4:end])[0]:
            return "chunk %r has a bad checksum" % kind.decode("latin-1")
        if kind == b"IEND":
            return None
        pos = end
    return "it is truncated (no IEND chunk)"


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


# ---------------------------------------------------------------------------------------------
# request parameters

def _param(request, name: str, required: bool = True) -> Optional[str]:
    value = request.args.get(name)
    if value is None or value == "":
        if required:
            raise _bad_request("missing required parameter %r" % name)
        return None
    if len(value) > _MAX_PARAM_LENGTH:
        raise _bad_request("parameter %r is too long (%d characters)" % (name, len(value)))
    return value


def _step_param(request, name: str = "step") -> Optional[int]:
    value = _param(request, name, required=False)
    if value is None:
        return None
    try:
        step = int(value, 10)
    except ValueError:
        raise _bad_request("parameter %r must be an integer step, got %r" % (name, value)) from None
    if step < 0 or step > 2 ** 63 - 1:
        raise _bad_request("parameter %r is out of range: %r" % (name, value))
    return step


def _pick_step(datums: List[Any], step: Optional[int], what: str) -> Any:
    """The datum at `step` (latest when None); 404 naming the steps that exist."""
    if not datums:
        raise _not_found("no data for %s" % what)
    if step is None:
        return max(datums, key=lambda d: (d.step, d.wall_time))
    matching = [d for d in datums if d.step == step]
    if not matching:
        steps = sorted({d.step for d in datums})
        raise _not_found("no step %d for %s; available steps: %s" % (step, what, steps))
    return max(matching, key=lambda d: d.wall_time)


# ---------------------------------------------------------------------------------------------

class ArchVizPlugin(base_plugin.TBPlugin):
    """Serves the Arch Viz tab: architectures, filter grids and diffs over the data provider."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._data_provider = context.data_provider
        self._downsample = (context.sampling_hints or {}).get(
            self.plugin_name, _DEFAULT_DOWNSAMPLING)
        # (experiment, run, step, wall_time) -> Architecture; bounded, thread-safe.
        self._arch_cache: "collections.OrderedDict[Tuple, schema.Architecture]" = (
            collections.OrderedDict())
        self._cache_lock = threading.Lock()
        # (experiment, run) -> ((max_step, max_wall_time), steps, errors) for the runs route, so
        # that listing runs does not transfer every architecture again while nothing changed.
        self._steps_cache: Dict[Tuple, Tuple] = {}

    # -- TBPlugin interface --------------------------------------------------------------------
    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_index_js,
            "/static/*": self._serve_static,
            "/runs": self._serve_runs,
            "/architecture": self._serve_architecture,
            "/filters": self._serve_filters,
            "/filters_image": self._serve_filters_image,
            "/diff": self._serve_diff,
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

    def _architecture_series(self, ctx, eid, run: str) -> List[Any]:
        """All stored architecture datums of one run (empty when the run has none)."""
        try:
            result = self._data_provider.read_tensors(
                ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME,
                downsample=self._downsample,
                run_tag_filter=provider.RunTagFilter(runs=[run], tags=[metadata.ARCHITECTURE_TAG]))
        except _DECODE_ERRORS as e:
            raise _undecodable("the architecture data of run %r" % run, e) from None
        return list(result.get(run, {}).get(metadata.ARCHITECTURE_TAG, []))

    def _decode_architecture(self, eid, run: str, datum) -> schema.Architecture:
        key = (eid, run, datum.step, datum.wall_time)
        with self._cache_lock:
            cached = self._arch_cache.get(key)
            if cached is not None:
                self._arch_cache.move_to_end(key)
                return cached
        value = datum.numpy
        what = "run %r step %d" % (run, datum.step)
        if getattr(value, "dtype", None) is None or value.dtype.kind not in ("O", "S", "U") \
                or value.shape != ():
            raise _unreadable("architecture of %s is not a scalar string tensor (dtype %s, shape %s)"
                              % (what, getattr(value, "dtype", "?"), getattr(value, "shape", "?")))
        raw = value.item()
        try:
            arch = schema.from_json(raw)
        except schema.SchemaError as e:
            raise _unreadable("architecture of %s is unreadable: %s" % (what, e)) from None
        with self._cache_lock:
            self._arch_cache[key] = arch
            while len(self._arch_cache) > 64:
                self._arch_cache.popitem(last=False)
        return arch

    def load_architecture(self, ctx, eid, run: str, step: Optional[int]) -> Tuple[int, schema.Architecture]:
        """(step, Architecture) of `run` at `step` (latest when None); RequestError otherwise."""
        datums = self._architecture_series(ctx, eid, run)
        if not datums:
            raise _not_found("run %r has no architecture" % run)
        datum = _pick_step(datums, step, "the architecture of run %r" % run)
        return datum.step, self._decode_architecture(eid, run, datum)

    def _filter_series(self, ctx, eid, run: str, layer: str) -> List[Any]:
        tag = metadata.filters_tag(layer)
        try:
            result = self._data_provider.read_blob_sequences(
                ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME,
                downsample=self._downsample,
                run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]))
        except _DECODE_ERRORS as e:
            raise _undecodable("the filter grids of layer %r in run %r" % (layer, run), e) from None
        return list(result.get(run, {}).get(tag, []))

    def _read_blob(self, ctx, value, what: str, names: Tuple[str, ...] = ()) -> bytes:
        try:
            return bytes(self._data_provider.read_blob(ctx, blob_key=value.blob_key))
        except _DECODE_ERRORS as e:
            raise _undecodable(what, e) from None
        except tb_errors.InvalidArgumentError as e:
            # TensorBoard's Rust data server (--load_fast=true) issues blob keys it cannot parse
            # back when the run or tag name holds a character JSON escapes ('"', '\\').
            hint = ""
            if any(c in n for n in names for c in '"\\'):
                hint = ("; TensorBoard's fast data server cannot read blobs of a run or layer "
                        "whose name contains '\"' or '\\': rename it, or start TensorBoard "
                        "with --load_fast=false")
            raise _unreadable("%s cannot be read (%s)%s" % (what, e, hint)) from None

    def _filter_datum(self, request) -> Tuple[Any, str, str, Any, List[Any]]:
        ctx, eid = self._ctx(request)
        run = _param(request, "run")
        layer = _param(request, "layer")
        step = _step_param(request)
        datums = self._filter_series(ctx, eid, run, layer)
        if not datums:
            raise _not_found("run %r has no filter grids for layer %r" % (run, layer))
        datum = _pick_step(datums, step, "the filter grid of layer %r in run %r" % (layer, run))
        return ctx, run, layer, datum, datums

    # -- routes --------------------------------------------------------------------------------
    @_json_route
    def _serve_runs(self, request):
        ctx, eid = self._ctx(request)
        tensors = self._data_provider.list_tensors(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME)
        blobs = self._data_provider.list_blob_sequences(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME)
        runs: Dict[str, Dict[str, Any]] = {}
        for run, tags in tensors.items():
            series = tags.get(metadata.ARCHITECTURE_TAG)
            if series is None:
                continue
            runs[run] = {"filter_layers": []}
            runs[run]["steps"], runs[run]["errors"] = self._run_steps(ctx, eid, run, series)
        for run, tags in blobs.items():
            layers = sorted(filter(None, (metadata.layer_from_filters_tag(t) for t in tags)))
            if not layers:
                continue
            info = runs.setdefault(run, {"steps": [], "filter_layers": [], "errors": []})
            info["filter_layers"] = layers
        return _json_response(request, runs)

    def _run_steps(self, ctx, eid, run: str, series) -> Tuple[List[int], List[str]]:
        """(steps, errors) of a run's architecture series; recomputed only when the series'
        last step or wall time changed (new data always moves them)."""
        mark = (getattr(series, "max_step", None), getattr(series, "max_wall_time", None))
        with self._cache_lock:
            cached = self._steps_cache.get((eid, run))
        if cached is not None and mark[0] is not None and cached[0] == mark:
            return list(cached[1]), list(cached[2])
        steps: List[int] = []
        errors: List[str] = []
        try:
            steps = sorted({d.step for d in self._architecture_series(ctx, eid, run)})
        except RequestError as e:  # this run's data cannot be decoded: say so, list the rest
            errors.append(e.message)
        except tb_errors.PublicError as e:
            errors.append(str(e))
        with self._cache_lock:
            self._steps_cache[(eid, run)] = (mark, steps, errors)
        return list(steps), list(errors)

    @_json_route
    def _serve_architecture(self, request):
        ctx, eid = self._ctx(request)
        run = _param(request, "run")
        step = _step_param(request)
        _, arch = self.load_architecture(ctx, eid, run, step)
        return _json_response(request, arch.to_dict())

    @_json_route
    def _serve_filters(self, request):
        ctx, run, layer, datum, datums = self._filter_datum(request)
        what = "filter grid of layer %r in run %r at step %d" % (layer, run, datum.step)
        values = list(datum.values)
        if len(values) <= metadata.FILTERS_META_INDEX:
            raise _unreadable("%s has no tile metadata" % what)
        raw = self._read_blob(ctx, values[metadata.FILTERS_META_INDEX],
                              "the tile metadata of the %s" % what, (run, layer))
        try:
            tiles = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise _unreadable("%s has unreadable tile metadata: %s" % (what, e)) from None
        if not isinstance(tiles, dict) or not isinstance(tiles.get("tiles"), list):
            raise _unreadable("%s has tile metadata without a 'tiles' list" % what)
        answer = dict(tiles)
        answer.update({
            "run": run, "layer": layer, "step": datum.step, "wall_time": datum.wall_time,
            "steps": sorted({d.step for d in datums}),
            "image_url": "filters_image?" + urllib.parse.urlencode(
                {"run": run, "layer": layer, "step": datum.step}),
        })
        return _json_response(request, answer)

    @_json_route
    def _serve_filters_image(self, request):
        ctx, run, layer, datum, _ = self._filter_datum(request)
        values = list(datum.values)
        if len(values) <= metadata.FILTERS_PNG_INDEX:
            raise _unreadable("filter grid of layer %r in run %r has no image" % (layer, run))
        what = "filter grid of layer %r in run %r at step %d" % (layer, run, datum.step)
        png = self._read_blob(ctx, values[metadata.FILTERS_PNG_INDEX], "the image of the " + what,
                              (run, layer))
        problem = _png_problem(png)
        if problem is not None:
            raise _unreadable("%s is not a PNG image: %s" % (what, problem))
        return http_util.Respond(request, png, "image/png")

    @_json_route
    def _serve_diff(self, request):
        from tensorboard_archviz import diff as diff_lib

        ctx, eid = self._ctx(request)
        run_a = _param(request, "run_a")
        run_b = _param(request, "run_b")
        step_a = _step_param(request, "step_a")
        step_b = _step_param(request, "step_b")
        step_a, arch_a = self.load_architecture(ctx, eid, run_a, step_a)
        step_b, arch_b = self.load_architecture(ctx, eid, run_b, step_b)
        answer = diff_lib.diff_architectures(arch_a, arch_b)
        answer["a"] = {"run": run_a, "step": step_a}
        answer["b"] = {"run": run_b, "step": step_b}
        return _json_response(request, answer)
