"""Reading stored architectures through a TensorBoard ``DataProvider``: the one reader shared
by the plugin's routes and the ``archviz`` command line.

- ``ArchitectureReader.runs`` — runs with an architecture, their steps and per-run errors;
- ``ArchitectureReader.load`` — the Architecture of a run at a step (latest when None);
- ``ArchitectureReader.series`` — every kept step of a run in one bounded read (the timeline);
- ``parse_step`` / ``step_string`` — steps are int64 (negative ones too), exact as decimal text;
- ``decode`` — tensor value -> depth-checked, migrated, validated ``schema.Architecture``;
- ``ArchitectureReader.document`` — the architecture route's answer: JSON and gzip bytes with an
  ETag, built once per stored step and served from a byte-bounded cache;
- ``read_series`` — one tensor series through ``bounded_reads`` (a stored shape claiming more
  than a bound is refused before decoding; a ``MemoryError`` becomes this run's 422);
- ``version_note`` — the plugin-data version of a series (a newer writer is said);
- filter grids: ``filter_series``, ``read_blob``, ``png_problem`` / ``png_size``, ``tiles_answer``.

Hostile data is contained per run: everything that can fail while reading one run becomes that
run's error (``ReadError``, also the CLI's one-line message); ``runs`` never fails as a whole.

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
import gzip
import hashlib
import json
import logging
import re
import struct
import threading
import time
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

from tensorboard import errors as tb_errors
from tensorboard.data import provider

from tensorboard_archviz import bounded_reads, metadata, schema, util

logger = logging.getLogger(__name__)

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
DOCUMENT_CACHE_BYTES = 256 * 1024 * 1024  # served architecture bytes (JSON + gzip) kept
# Time one timeline request may spend diffing steps not diffed before: the rest of the entries
# are answered "pending" (computed pairs are cached, so the next request continues).
TIMELINE_BUDGET_S = 10.0
TIMELINE_CACHE_BYTES = 64 * 1024 * 1024
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


def read_series(data_provider, ctx, eid: str, run: str, tag: str, downsample: int,
                what: str = "architecture") -> List[Any]:
    """The tensor datums of one series of `run` (at most `downsample`, the latest included);
    every way stored data can fail the read is a ReadError 422 naming the run and the tag."""
    try:
        return bounded_reads.read_tensors(data_provider, ctx, eid, run, tag, downsample)
    except bounded_reads.ClaimTooLarge as e:
        raise ReadError(422, "the %s data of run %r cannot be read: tag %r step %s: %s"
                        % (what, run, tag, step_string(e.step), e.message)) from None
    except MemoryError:
        raise ReadError(422, "the %s data of run %r cannot be decoded: tag %r needs more memory "
                        "than is available (MemoryError)" % (what, run, tag)) from None
    except DECODE_ERRORS as e:
        raise ReadError(422, "the %s data of run %r cannot be decoded: %s (tag %r)"
                        % (what, run, util.one_line(e), tag)) from None
    except tb_errors.PublicError:
        raise
    except Exception as e:  # noqa: BLE001 - gRPC errors are not PublicErrors
        if _is_reply_too_large(e):
            raise TooLarge("this run's data is too large to read at once: %s"
                           % util.one_line(e)) from None
        raise


def version_note(series, run: str, tag: str) -> Optional[str]:
    """A sentence when the series' plugin data was written by a newer archviz (its ``version``
    above ``metadata.PROTO_VERSION``) or cannot be parsed; None when this plugin reads it."""
    content = getattr(series, "plugin_content", None)
    if not content:
        return None
    try:
        data = metadata.parse_plugin_metadata(content)
    except ValueError as e:
        return "run %r tag %r: %s" % (run, tag, util.one_line(e))
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool) \
            and version > metadata.PROTO_VERSION:
        return ("run %r tag %r was written by a newer tensorboard-archviz (plugin data version "
                "%d; this plugin reads version %d): update tensorboard-archviz; what this "
                "version can read is shown" % (run, tag, version, metadata.PROTO_VERSION))
    return None


class ByteCache:
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
        self.cache = ByteCache(cache_bytes)
        self.documents = ByteCache(DOCUMENT_CACHE_BYTES)
        self.pairs = ByteCache(TIMELINE_CACHE_BYTES)  # timeline facts per pair of writes
        self.timeline_budget = TIMELINE_BUDGET_S
        self._indexes: Dict[Tuple[str, str], RunIndex] = {}
        self._lock = threading.Lock()

    # -- raw reads -----------------------------------------------------------------------------
    def read(self, ctx, eid: str, run: str, downsample: int) -> List[Any]:
        """The run's architecture datums, at most `downsample` of them (the latest included)."""
        return read_series(self.data_provider, ctx, eid, run, metadata.ARCHITECTURE_TAG,
                           downsample)

    def list_series(self, ctx, eid: str, run: Optional[str] = None) -> Dict[str, Any]:
        """run -> TensorTimeSeries of every run (or of `run` only) that holds an architecture."""
        listing = self.data_provider.list_tensors(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME,
            run_tag_filter=provider.RunTagFilter(
                runs=None if run is None else [run], tags=[metadata.ARCHITECTURE_TAG]))
        return {r: tags[metadata.ARCHITECTURE_TAG] for r, tags in listing.items()
                if metadata.ARCHITECTURE_TAG in tags}

    # -- which steps exist ---------------------------------------------------------------------
    def index(self, ctx, eid: str, run: str, series=None) -> RunIndex:
        """The kept steps of `run` (cached until its series' last step or wall time moves)."""
        if series is None:
            series = self.list_series(ctx, eid, run).get(run)
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
            note = version_note(series, run, metadata.ARCHITECTURE_TAG)
            try:
                index = self.index(ctx, eid, run, series)
            except tb_errors.PublicError as e:
                index = RunIndex((None, None), [], 1, [str(e)])
            except Exception as e:  # noqa: BLE001 - one run's failure is that run's error
                logger.warning("archviz: reading run %r failed", run, exc_info=True)
                index = RunIndex((None, None), [], 1, [
                    "the architecture data of run %r cannot be read: %s"
                    % (run, util.one_line(e))])
            out[run] = index if note is None else dataclasses.replace(
                index, errors=[note] + list(index.errors))
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
        found, _, arch = self._load(ctx, eid, run, step)
        return found, arch

    def _load(self, ctx, eid: str, run: str, step: Optional[int], series=None):
        """(step, wall_time, Architecture) of `run` at `step` (latest when None)."""
        if series is None:
            series = self.list_series(ctx, eid, run).get(run)
        if series is None:
            raise ReadError(404, "run %r has no architecture" % run)
        max_step = getattr(series, "max_step", None)
        if step is None or step == max_step:  # the latest write is usually the largest step
            datums = self.read(ctx, eid, run, 1)
            wanted = max_step if step is None else step
            if datums and (datums[-1].step == wanted or wanted is None):
                d = datums[-1]
                return d.step, d.wall_time, self.decode_datum(eid, run, d)
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
        cached = self.cache.get((eid, run, step, match[0][1]))
        if cached is not None:
            return step, match[0][1], cached
        for d in latest_per_step(self.read(ctx, eid, run, index.downsample)):
            if d.step == step:
                return step, d.wall_time, self.decode_datum(eid, run, d)
        raise ReadError(404, "step %s of run %r is no longer kept by TensorBoard"
                        % (step_string(step), run))

    def document(self, ctx, eid: str, run: str, step: Optional[int]) -> "Document":
        """The architecture route's answer for `run` at `step` (latest when None): built once
        per stored write (decoded, validated, serialised, gzipped, hashed) and then served from
        the cache; a warm request costs one ``list_tensors`` call."""
        series = self.list_series(ctx, eid, run).get(run)
        if series is None:
            raise ReadError(404, "run %r has no architecture" % run)
        mark = (getattr(series, "max_step", None), getattr(series, "max_wall_time", None))
        latest_key = ("latest", eid, run, mark) if mark[0] is not None else None
        latest = self.documents.get(latest_key) if latest_key is not None else None
        if latest is not None and (step is None or step == latest.step):
            return latest
        key = None if step is None else self._step_key(eid, run, mark, step)
        doc = self.documents.get(key) if key is not None else None
        if doc is not None:
            return doc
        found, wall_time, arch = self._load(ctx, eid, run, step, series)
        doc = self.documents.get((eid, run, found, wall_time))
        if doc is None:
            doc = Document.of(found, arch)
            self.documents.put((eid, run, found, wall_time), doc, doc.cost)
        if latest_key is not None and step is None:
            self.documents.put(latest_key, doc, 64)  # an alias: the bytes are counted once
        return doc

    def _step_key(self, eid: str, run: str, mark, step: int):
        """The document key of `step` when the run's kept steps are already known."""
        with self._lock:
            index = self._indexes.get((eid, run))
        if index is None or index.mark != mark:
            return None
        match = [p for p in index.points if p[0] == step]
        return (eid, run, step, match[0][1]) if match else None

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
        diffed once (a step stored byte for byte like the previous one is not even decoded).
        Bounded in time: the facts of each pair of writes are cached, and once
        ``timeline_budget`` seconds are spent on pairs not seen before, the remaining entries
        are answered ``pending`` with ``partial: true`` (the next request continues). A
        complete answer is kept until the run's series changes.
        """
        index = self.index(ctx, eid, run)
        if not index.points and index.errors:
            raise ReadError(422, index.errors[0])
        key = ("timeline", eid, run, index.mark)
        done = self.pairs.get(key) if index.mark[0] is not None else None
        if done is not None:
            return done
        builder = _TimelineBuilder(self, eid, run, time.monotonic() + self.timeline_budget)
        for datum, raw, error in self.series(ctx, eid, run):
            builder.add(datum, raw, error)
        answer = {"run": run, "entries": builder.entries, "errors": list(index.errors),
                  "partial": builder.pending > 0}
        if builder.pending:
            answer["notice"] = (
                "computing what changed took longer than the timeline's budget of %g s: %d of "
                "%d steps are not compared yet; reload to continue (compared steps are kept)"
                % (self.timeline_budget, builder.pending, len(builder.entries)))
        elif index.mark[0] is not None:
            self.pairs.put(key, answer, 512 * (len(builder.entries) + 1))
        return answer


_PENDING = ("pending", None)


class _TimelineBuilder:
    """The timeline's entries, one stored write at a time (see ArchitectureReader.timeline)."""

    def __init__(self, reader: ArchitectureReader, eid: str, run: str, deadline: float):
        self.reader, self.eid, self.run, self.deadline = reader, eid, run, deadline
        self.prev: Optional[Tuple[Any, bytes]] = None  # the previous readable write
        self.entries: List[Dict[str, Any]] = []
        self.pending = 0

    def add(self, datum, raw: Optional[bytes], error: Optional[str]) -> None:
        entry: Dict[str, Any] = {"step": datum.step, "step_string": step_string(datum.step),
                                 "wall_time": datum.wall_time}
        if raw is not None:
            kind, value = self._facts(datum, raw)
            if kind == "ok":
                entry.update(value)
                if self.prev is not None:
                    entry["previous_step"] = self.prev[0].step
                    entry["previous_step_string"] = step_string(self.prev[0].step)
                self.prev = (datum, raw)
            elif kind == "error":
                error = value
            else:
                self.pending += 1
                entry["pending"] = True
                error = ("not compared yet: the timeline's time budget (%g s) ran out; reload "
                         "to continue" % self.reader.timeline_budget)
        if error is not None:
            entry["error"] = error
        self.entries.append(entry)

    def _facts(self, datum, raw: bytes) -> Tuple[str, Any]:
        """("ok", facts) / ("error", message) / _PENDING for one write after self.prev."""
        from tensorboard_archviz import diff

        prev = self.prev
        key = ("pair", self.eid, self.run,
               None if prev is None else (prev[0].step, prev[0].wall_time),
               (datum.step, datum.wall_time))
        cached = self.reader.pairs.get(key)
        if cached is not None:
            return cached
        if self.pending or time.monotonic() > self.deadline:
            return _PENDING
        decode_datum = self.reader.decode_datum
        try:
            if prev is not None and raw == prev[1]:
                facts = diff.unchanged_entry(decode_datum(self.eid, self.run, prev[0]))
            else:
                arch = decode_datum(self.eid, self.run, datum)
                facts = (diff.first_entry(arch) if prev is None else
                         diff.timeline_entry(decode_datum(self.eid, self.run, prev[0]), arch))
            result: Tuple[str, Any] = ("ok", facts)
        except ReadError as e:
            result = ("error", e.message)
        except Exception as e:  # noqa: BLE001 - one step's failure is that step's error
            logger.warning("archviz: timeline of run %r step %s failed", self.run,
                           step_string(datum.step), exc_info=True)
            result = ("error", "step %s of run %r cannot be compared: %s"
                      % (step_string(datum.step), self.run, util.one_line(e)))
        self.reader.pairs.put(key, result, len(json.dumps(result, default=str)) + 256)
        return result


@dataclasses.dataclass(frozen=True)
class Document:
    """One architecture as the route serves it: JSON bytes, the same gzipped, and an ETag."""

    step: int
    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, step: int, arch: schema.Architecture) -> "Document":
        return cls.of_json(arch.to_dict(), step)

    @classmethod
    def of_json(cls, data: Any, step: int = 0) -> "Document":
        """Any JSON-ready answer as served bytes (NaN/inf as TensorBoard's JSON answers)."""
        try:
            text = json.dumps(data, separators=(",", ":"), allow_nan=False)
        except ValueError:  # a non-finite float somewhere: TensorBoard's own cleaning
            from tensorboard.backend import json_util

            text = json.dumps(json_util.Cleanse(data), separators=(",", ":"))
        body = text.encode("ascii")
        etag = '"%s"' % hashlib.sha256(body).hexdigest()[:32]
        return cls(step, body, gzip.compress(body, compresslevel=6, mtime=0), etag)

    @property
    def cost(self) -> int:
        return len(self.body) + len(self.gzipped) + 256


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
        return bounded_reads.read_blob_sequences(data_provider, ctx, eid, run, tag, downsample)
    except bounded_reads.ClaimTooLarge as e:
        raise ReadError(422, "the filter grids of layer %r in run %r cannot be read: tag %r "
                        "step %s: %s" % (layer, run, tag, step_string(e.step), e.message)) \
            from None
    except MemoryError:
        raise ReadError(422, "the filter grids of layer %r in run %r need more memory than is "
                        "available (MemoryError; tag %r)" % (layer, run, tag)) from None
    except DECODE_ERRORS as e:
        raise ReadError(422, "the filter grids of layer %r in run %r cannot be decoded: %s: %s"
                        % (layer, run, type(e).__name__, e)) from None


def read_blob(data_provider, ctx, value, what: str, names: Tuple[str, ...] = ()) -> bytes:
    """One blob's bytes; ReadError 422 when the provider cannot decode or find it."""
    try:
        return bytes(data_provider.read_blob(ctx, blob_key=value.blob_key))
    except MemoryError:
        raise ReadError(422, "%s needs more memory than is available (MemoryError)" % what) \
            from None
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


# ---------------------------------------------------------------------------------------------
# checking stored filter grids: the PNG and its tile metadata

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_GRID_SIDE = 1024  # rows, cols, tile_size and image_size bound when the PNG cannot be read
MAX_KERNEL_SIDE = 64   # a first layer's kernel drawn from the tile metadata


def png_problem(data: bytes) -> Optional[str]:
    """Why `data` is not a complete PNG (signature, IHDR first, chunk lengths and CRCs, IEND), or None."""
    if not data.startswith(PNG_SIGNATURE):
        return "no PNG signature"
    pos = len(PNG_SIGNATURE)
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


def png_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from a PNG's IHDR header, or None when `data` does not start like a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return (width, height) if width > 0 and height > 0 else None


def parse_tiles(raw: bytes, what: str) -> Dict[str, Any]:
    """The stored tile metadata as a dict with a ``tiles`` list; ReadError 422 otherwise."""
    problem = util.json_depth_problem(raw)
    if problem is not None:
        raise ReadError(422, "%s has unreadable tile metadata: %s" % (what, problem))
    try:
        tiles = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ReadError(422, "%s has unreadable tile metadata: %s" % (what, e)) from None
    if not isinstance(tiles, dict) or not isinstance(tiles.get("tiles"), list):
        raise ReadError(422, "%s has tile metadata without a 'tiles' list" % what)
    return tiles


def _whole(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_layout(tiles: Dict[str, Any], size: Optional[Tuple[int, int]],
                 size_problem: Optional[str] = None) -> Dict[str, Any]:
    """The tile metadata with its layout checked against the real PNG size (width, height):
    ``margin``, ``cols``, ``rows``, ``tile_size`` and ``image_size`` clamped to what the PNG
    can hold, each change said in ``layout_problems``; malformed tile entries replaced by
    ``{"index", "row": null, "col": null, "unreadable": reason}``."""
    out = dict(tiles)
    problems: List[str] = []
    if size is None:
        problems.append("the grid image cannot be checked (%s): sizes bounded to %d px"
                        % (size_problem or "not a PNG", MAX_GRID_SIDE))
        width = height = MAX_GRID_SIDE
    else:
        width, height = size
    grid = "the %dx%d PNG" % (width, height) if size is not None else "the bound"

    def clamp(key: str, low: int, high: int, default: int) -> int:
        value = _whole(out.get(key))
        used = default if value is None else min(max(value, low), high)
        if value != used:
            problems.append("%s %s does not fit %s: %d used" % (
                key, "missing" if key not in tiles else json.dumps(tiles[key])[:40], grid, used))
        out[key] = used
        return used

    margin = clamp("margin", 0, max(0, min(width, height) // 2), 0)
    cols = clamp("cols", 1, max(1, width), 1)
    rows = clamp("rows", 1, max(1, height), 1)
    fit = min((width - (cols - 1) * margin) // cols, (height - (rows - 1) * margin) // rows)
    clamp("tile_size", 1, max(1, fit), max(1, fit))
    image = out.get("image_size")
    if image is not None and not (isinstance(image, list) and len(image) == 2 and all(
            _whole(v) is not None and 0 < v <= 65536 for v in image)):
        problems.append("image_size %s is not two sizes in pixels: not shown"
                        % json.dumps(image)[:40])
        out["image_size"] = None
    out["tiles"] = [_checked_tile(t, k, rows, cols) for k, t in enumerate(tiles["tiles"])]
    if len(out["tiles"]) > rows * cols:
        problems.append("%d tiles for a %dx%d grid: the extra ones are unreadable"
                        % (len(out["tiles"]), rows, cols))
    out["png_size"] = None if size is None else [width, height]
    out["layout_problems"] = problems
    return out


def _checked_tile(tile: Any, k: int, rows: int, cols: int) -> Dict[str, Any]:
    """One tile entry, or an ``unreadable`` placeholder saying why (position k in the list)."""
    def unreadable(reason: str) -> Dict[str, Any]:
        index = _whole(tile.get("index")) if isinstance(tile, dict) else None
        return {"index": k if index is None else index, "row": None, "col": None,
                "unreadable": "tile entry %d %s" % (k, reason)}

    if not isinstance(tile, dict):
        return unreadable("is not an object (%s)" % type(tile).__name__.replace("NoneType",
                                                                                 "null"))
    index, row, col = (_whole(tile.get(key)) for key in ("index", "row", "col"))
    if index is None or row is None or col is None:
        return unreadable("lacks a whole-number index, row or col")
    if not (0 <= row < rows and 0 <= col < cols) or row * cols + col >= rows * cols:
        return unreadable("is outside the %dx%d grid (row %d, col %d)" % (rows, cols, row, col))
    if k >= rows * cols:
        return unreadable("is beyond the %dx%d grid" % (rows, cols))
    kernel = tile.get("kernel")
    if kernel is not None and not _kernel_ok(kernel):
        tile = dict(tile, kernel=None,
                    kernel_problem="the stored kernel is not a [height][width][channels] "
                                   "array of at most %d per side" % MAX_KERNEL_SIDE)
    return tile


def _kernel_ok(kernel: Any) -> bool:
    if not (isinstance(kernel, list) and 0 < len(kernel) <= MAX_KERNEL_SIDE):
        return False
    rows = [r for r in kernel if isinstance(r, list) and 0 < len(r) <= MAX_KERNEL_SIDE]
    if len(rows) != len(kernel) or len({len(r) for r in rows}) != 1:
        return False
    cells = [c for r in rows for c in r]
    return all(isinstance(c, list) and 0 < len(c) <= MAX_KERNEL_SIDE and len(c) == len(cells[0])
               and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in c)
               for c in cells)
