"""Reading stored architectures through a TensorBoard ``DataProvider``: the one reader shared
by the plugin's routes and the ``archviz`` command line.

- ``ArchitectureReader.runs`` — runs with an architecture, their steps and per-run errors;
- ``ArchitectureReader.load`` — the Architecture of a run at a step (latest when None);
- ``ArchitectureReader.series`` — every kept step of a run in one bounded read (the timeline);
- ``parse_step`` / ``step_string`` — steps are int64 (negative ones too), exact as decimal text;
- ``decode`` — tensor value -> depth-checked, migrated, validated ``schema.Architecture``.

Bounded reads. The DataProvider API reads a tensor time series only as a whole (``downsample``
= how many points, the latest always included; there is no step filter), and TensorBoard's
data server caps one reply at 256 MiB. So one series read never asks for more than
``read_budget`` bytes of architecture JSON: the latest point alone is read first
(``downsample=1``, which is all the latest view needs), its size gives how many points fit in
the budget, and a run whose kept steps do not all fit lists those that do with a per-run error
instead of failing every request. Which steps exist is remembered per run until the series'
last step or wall time moves (``list_tensors`` metadata), and decoded architectures are cached
up to ``cache_bytes`` of estimated memory.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

from tensorboard import errors as tb_errors
from tensorboard.data import provider

from tensorboard_archviz import metadata, schema, util

GRPC_REPLY_LIMIT = 256 * 1024 * 1024  # TensorBoard's data server: grpc.max_receive_message_length
# JSON bytes asked for in one read: three quarters of the reply cap, so a series that was
# readable at once stays readable, with a quarter left for framing and steps of varying size (a
# read that still fails is halved and retried).
READ_BUDGET = 192 * 1024 * 1024
CACHE_BYTES = 512 * 1024 * 1024  # estimated memory of the decoded architectures kept
# A decoded Architecture takes about this many bytes of memory per byte of its JSON (measured
# with tracemalloc: 4.4-4.5x for a PyTorch ResNet-50 extraction and Keras-like documents of
# 1k-50k nodes; rounded up); used to bound the cache.
MEMORY_PER_JSON_BYTE = 5
DEFAULT_DOWNSAMPLE = 1000
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
# What TensorBoard's data providers raise when an event holds a malformed TensorProto
# (tensor_util.make_ndarray: content of the wrong size, a shape that does not match the values)
# or a blob sequence of the wrong rank: stored data, not our bug.
DECODE_ERRORS = (ValueError, TypeError, IndexError, KeyError)
_STEP = re.compile(r"-?[0-9]{1,25}")


class ReadError(Exception):
    """A problem answered as JSON with an HTTP code (400 request, 404 unknown, 422 data) by the
    plugin and printed as one line by the CLI."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class TooLarge(ReadError):
    """One read of this series would exceed what the data provider can return at once."""

    def __init__(self, message: str):
        super().__init__(422, message)


def parse_step(text: str, name: str = "step") -> int:
    """A step parameter: a decimal int64 (negative steps are valid); ReadError 400 otherwise."""
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str) or not _STEP.fullmatch(value):
        raise ReadError(400, "parameter %r must be an integer step, got %r" % (name, text))
    step = int(value, 10)
    if not INT64_MIN <= step <= INT64_MAX:
        raise ReadError(400, "parameter %r is out of range: %r" % (name, text))
    return step


def step_string(step: int) -> str:
    """The exact decimal form of a step (JavaScript numbers lose steps above 2^53)."""
    return str(int(step))


def steps_text(steps: List[int], limit: int = 20) -> str:
    shown = ", ".join(step_string(s) for s in steps[:limit])
    return "[%s%s]" % (shown, ", ... (%d in all)" % len(steps) if len(steps) > limit else "")


@dataclasses.dataclass
class RunIndex:
    """What one bounded read of a run's architecture series holds."""

    mark: Tuple[Any, Any]  # (max_step, max_wall_time) of the series when it was read
    points: List[Tuple[int, float, int]]  # (step, wall_time, JSON bytes), latest write per step
    downsample: int  # the downsample that reads these points in one call
    errors: List[str]

    @property
    def steps(self) -> List[int]:
        return [p[0] for p in self.points]


def json_bytes(datum, run: str = "?") -> bytes:
    """The stored JSON of an architecture datum; ReadError 422 for any other tensor."""
    value = datum.numpy
    if not _is_string(datum):
        raise ReadError(422, "architecture of run %r step %s is not a scalar string tensor "
                        "(dtype %s, shape %s)" % (run, step_string(datum.step),
                                                  getattr(value, "dtype", "?"),
                                                  getattr(value, "shape", "?")))
    raw = value.item()
    return raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)


def decode(raw: bytes, what: str) -> schema.Architecture:
    """Architecture JSON -> validated, migrated Architecture; ReadError 422 naming the field.

    The nesting depth is checked before any recursive decoder sees the text, so a document
    nested thousands of levels deep is refused with the field's path, never a RecursionError.
    """
    problem = util.json_depth_problem(raw)
    if problem is not None:
        raise ReadError(422, "architecture of %s is unreadable: %s" % (what, problem))
    try:
        return schema.from_json(raw)
    except schema.SchemaError as e:
        raise ReadError(422, "architecture of %s is unreadable: %s" % (what, e)) from None
    except RecursionError:  # defensive: the depth check above should make this unreachable
        raise ReadError(422, "architecture of %s is unreadable: nested too deeply" % what) from None


def latest_per_step(datums) -> List[Any]:
    """One datum per step (the last written), sorted by step."""
    best: Dict[int, Any] = {}
    for d in datums:
        if d.step not in best or d.wall_time >= best[d.step].wall_time:
            best[d.step] = d
    return [best[s] for s in sorted(best)]


def _too_large_message(run: str, size: int, fit: int, budget: int) -> str:
    return ("this run's data is too large to read at once: each architecture is about %.1f MB, "
            "so only %d of its steps fit in one read of %d MiB (TensorBoard's data server "
            "returns at most %d MiB); the latest %s shown. Keep fewer steps "
            "(--samples_per_plugin=archviz=%d) or write the architecture less often"
            % (size / 1e6, fit, budget >> 20, GRPC_REPLY_LIMIT >> 20,
               "is" if fit == 1 else "and a sample of the others are", max(1, fit)))


def _is_reply_too_large(e: BaseException) -> bool:
    code = getattr(e, "code", None)
    try:
        name = getattr(code(), "name", "") if callable(code) else ""
    except Exception:  # noqa: BLE001 - not a gRPC error
        name = ""
    return name == "RESOURCE_EXHAUSTED" or "larger than max" in str(e)


class _ByteCache:
    """A thread-safe LRU mapping bounded by the summed cost of its values, not their count."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.used = 0
        self._items: "collections.OrderedDict[Any, Tuple[Any, int]]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key, value, cost: int) -> None:
        if cost > self.capacity:
            return  # larger than the whole cache: never kept
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.used -= old[1]
            self._items[key] = (value, cost)
            self.used += cost
            while self.used > self.capacity:
                _, (_, c) = self._items.popitem(last=False)
                self.used -= c


class ArchitectureReader:
    """Architectures of the runs behind a TensorBoard ``DataProvider`` (see the module doc)."""

    def __init__(self, data_provider, downsample: int = DEFAULT_DOWNSAMPLE,
                 read_budget: int = READ_BUDGET, cache_bytes: int = CACHE_BYTES):
        self.data_provider = data_provider
        self.downsample = max(1, int(downsample))
        self.read_budget = read_budget
        self.cache = _ByteCache(cache_bytes)
        self._indexes: Dict[Tuple[str, str], RunIndex] = {}
        self._lock = threading.Lock()

    # -- raw reads -----------------------------------------------------------------------------
    def read(self, ctx, eid: str, run: str, downsample: int) -> List[Any]:
        """The run's architecture datums, at most `downsample` of them (the latest included)."""
        try:
            result = self.data_provider.read_tensors(
                ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME, downsample=downsample,
                run_tag_filter=provider.RunTagFilter(runs=[run], tags=[metadata.ARCHITECTURE_TAG]))
        except DECODE_ERRORS as e:
            raise ReadError(422, "the architecture data of run %r cannot be decoded: %s: %s"
                            % (run, type(e).__name__, e)) from None
        except tb_errors.PublicError:
            raise
        except Exception as e:  # noqa: BLE001 - gRPC errors are not PublicErrors
            if _is_reply_too_large(e):
                raise TooLarge("this run's data is too large to read at once: %s"
                               % util.one_line(e)) from None
            raise
        return list(result.get(run, {}).get(metadata.ARCHITECTURE_TAG, []))

    def list_series(self, ctx, eid: str) -> Dict[str, Any]:
        """run -> TensorTimeSeries of every run that holds an architecture."""
        listing = self.data_provider.list_tensors(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME)
        return {run: tags[metadata.ARCHITECTURE_TAG] for run, tags in listing.items()
                if metadata.ARCHITECTURE_TAG in tags}

    # -- which steps exist ---------------------------------------------------------------------
    def index(self, ctx, eid: str, run: str, series=None) -> RunIndex:
        """The kept steps of `run` (cached until its series' last step or wall time moves)."""
        if series is None:
            series = self.list_series(ctx, eid).get(run)
            if series is None:
                raise ReadError(404, "run %r has no architecture" % run)
        mark = (getattr(series, "max_step", None), getattr(series, "max_wall_time", None))
        with self._lock:
            cached = self._indexes.get((eid, run))
        if cached is not None and mark[0] is not None and cached.mark == mark:
            return cached
        try:
            index = self._build_index(ctx, eid, run, mark)
        except ReadError as e:  # remembered like the steps: listed as this run's error
            index = RunIndex(mark, [], 1, [e.message])
        with self._lock:
            self._indexes[(eid, run)] = index
        return index

    def _build_index(self, ctx, eid: str, run: str, mark) -> RunIndex:
        latest = self.read(ctx, eid, run, 1)
        if not latest:
            return RunIndex(mark, [], 1, [])
        size = max(len(json_bytes(latest[-1])) if _is_string(latest[-1]) else 1, 1)
        fit = max(1, min(self.downsample, self.read_budget // size))
        datums, errors = latest, []
        while fit > 1:
            try:
                datums = self.read(ctx, eid, run, fit)
                break
            except TooLarge:
                fit //= 2  # architectures of this run differ in size: halve and retry
        if fit < self.downsample and len(datums) >= fit:
            errors.append(_too_large_message(run, size, fit, self.read_budget))
        points = [(d.step, d.wall_time, len(json_bytes(d)) if _is_string(d) else 0)
                  for d in latest_per_step(datums)]
        return RunIndex(mark, points, fit, errors)

    def runs(self, ctx, eid: str) -> Dict[str, RunIndex]:
        """run -> RunIndex for every run with an architecture; a run that cannot be read gets an
        empty index with its error instead of failing the listing."""
        out = {}
        for run, series in self.list_series(ctx, eid).items():
            try:
                out[run] = self.index(ctx, eid, run, series)
            except tb_errors.PublicError as e:
                out[run] = RunIndex((None, None), [], 1, [str(e)])
        return out

    # -- architectures -------------------------------------------------------------------------
    def decode_datum(self, eid: str, run: str, datum) -> schema.Architecture:
        """The datum's Architecture, from the cache when it was decoded before."""
        key = (eid, run, datum.step, datum.wall_time)
        arch = self.cache.get(key)
        if arch is None:
            raw = json_bytes(datum, run)
            arch = decode(raw, "run %r step %s" % (run, step_string(datum.step)))
            self.cache.put(key, arch, len(raw) * MEMORY_PER_JSON_BYTE)
        return arch

    def load(self, ctx, eid: str, run: str, step: Optional[int]) -> Tuple[int, schema.Architecture]:
        """(step, Architecture) of `run` at `step` (latest when None); ReadError otherwise."""
        series = self.list_series(ctx, eid).get(run)
        if series is None:
            raise ReadError(404, "run %r has no architecture" % run)
        max_step = getattr(series, "max_step", None)
        if step is None or step == max_step:  # the latest write is usually the largest step
            datums = self.read(ctx, eid, run, 1)
            wanted = max_step if step is None else step
            if datums and (datums[-1].step == wanted or wanted is None):
                return datums[-1].step, self.decode_datum(eid, run, datums[-1])
        index = self.index(ctx, eid, run, series)
        if not index.points:
            raise ReadError(422 if index.errors else 404,
                            index.errors[0] if index.errors else "run %r has no architecture" % run)
        if step is None:
            step = index.points[-1][0]
        match = [p for p in index.points if p[0] == step]
        if not match:
            raise ReadError(404, "no step %s for the architecture of run %r; available steps: %s"
                            % (step_string(step), run, steps_text(index.steps)))
        key = (eid, run, step, match[0][1])
        cached = self.cache.get(key)
        if cached is not None:
            return step, cached
        for d in latest_per_step(self.read(ctx, eid, run, index.downsample)):
            if d.step == step:
                return step, self.decode_datum(eid, run, d)
        raise ReadError(404, "step %s of run %r is no longer kept by TensorBoard"
                        % (step_string(step), run))

    def series(self, ctx, eid: str, run: str) -> Iterator[Tuple[Any, Optional[bytes], Optional[str]]]:
        """(datum, JSON bytes or None, error or None) for every listed step of `run`, sorted by
        step, from ONE bounded read (the timeline)."""
        index = self.index(ctx, eid, run)
        if not index.points and index.errors:
            raise ReadError(422, index.errors[0])
        for d in latest_per_step(self.read(ctx, eid, run, index.downsample)):
            try:
                yield d, json_bytes(d, run), None
            except ReadError as e:
                yield d, None, e.message

    def timeline(self, ctx, eid: str, run: str) -> Dict[str, Any]:
        """One entry per kept step of `run`: what changed since the previous readable step.

        One bounded read of the series, each architecture decoded once, consecutive pairs
        diffed once (a step stored byte for byte like the previous one is not even decoded):
        linear in the number of steps.
        """
        from tensorboard_archviz import diff

        index = self.index(ctx, eid, run)
        entries: List[Dict[str, Any]] = []
        prev: Optional[Tuple[Any, bytes, schema.Architecture]] = None
        for datum, raw, error in self.series(ctx, eid, run):
            entry = {"step": datum.step, "step_string": step_string(datum.step),
                     "wall_time": datum.wall_time}
            if raw is not None:
                try:
                    if prev is not None and raw == prev[1]:
                        arch, facts = prev[2], diff.unchanged_entry(prev[2])
                    else:
                        arch = self.decode_datum(eid, run, datum)
                        facts = (diff.first_entry(arch) if prev is None
                                 else diff.timeline_entry(prev[2], arch))
                except ReadError as e:
                    error = e.message
                else:
                    entry.update(facts)
                    if prev is not None:
                        entry["previous_step"] = prev[0].step
                        entry["previous_step_string"] = step_string(prev[0].step)
                    prev = (datum, raw, arch)
            if error is not None:
                entry["error"] = error
            entries.append(entry)
        return {"run": run, "entries": entries, "errors": list(index.errors)}


def _is_string(datum) -> bool:
    value = datum.numpy
    return getattr(value, "dtype", None) is not None and value.dtype.kind in ("O", "S", "U") \
        and value.shape == ()


# ---------------------------------------------------------------------------------------------
# filter grids (blob sequences: the data provider reads one blob at a time, no size cap)

def pick_step(datums: List[Any], step: Optional[int], what: str) -> Any:
    """The datum at `step` (latest when None); ReadError 404 naming the steps that exist."""
    if not datums:
        raise ReadError(404, "no data for %s" % what)
    if step is None:
        return max(datums, key=lambda d: (d.step, d.wall_time))
    matching = [d for d in datums if d.step == step]
    if not matching:
        steps = sorted({d.step for d in datums})
        raise ReadError(404, "no step %s for %s; available steps: %s"
                        % (step_string(step), what, steps_text(steps)))
    return max(matching, key=lambda d: d.wall_time)


def filter_series(data_provider, ctx, eid: str, run: str, layer: str,
                  downsample: int = DEFAULT_DOWNSAMPLE) -> List[Any]:
    """The blob-sequence datums of one layer's filter grids (empty when there are none)."""
    tag = metadata.filters_tag(layer)
    try:
        result = data_provider.read_blob_sequences(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME, downsample=downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]))
    except DECODE_ERRORS as e:
        raise ReadError(422, "the filter grids of layer %r in run %r cannot be decoded: %s: %s"
                        % (layer, run, type(e).__name__, e)) from None
    return list(result.get(run, {}).get(tag, []))


def read_blob(data_provider, ctx, value, what: str, names: Tuple[str, ...] = ()) -> bytes:
    """One blob's bytes; ReadError 422 when the provider cannot decode or find it."""
    try:
        return bytes(data_provider.read_blob(ctx, blob_key=value.blob_key))
    except DECODE_ERRORS as e:
        raise ReadError(422, "%s cannot be decoded: %s: %s" % (what, type(e).__name__, e)) \
            from None
    except tb_errors.InvalidArgumentError as e:
        # TensorBoard's Rust data server (--load_fast=true) issues blob keys it cannot parse
        # back when the run or tag name holds a character JSON escapes ('"', '\\').
        hint = ""
        if any(c in n for n in names for c in '"\\'):
            hint = ("; TensorBoard's fast data server cannot read blobs of a run or layer "
                    "whose name contains '\"' or '\\': rename it, or start TensorBoard "
                    "with --load_fast=false")
        raise ReadError(422, "%s cannot be read (%s)%s" % (what, e, hint)) from None
