"""Reading layer signals through a TensorBoard ``DataProvider``: the ``signals`` route's answer.

Storage (written by ``summary`` / the writers, see http_api.md): tag ``archviz/signals`` holds
one JSON per step ``{"version", "signals": {key: {node_id: value}}, "meta"}``; tags
``archviz/values/<name>`` hold ``{"version", "name", "values": {node_id: value}}`` (served as
key ``values.<name>``). Each series is read once per request, bounded like the architecture
(``reader.read_series``: claims checked before decoding, at most ``reader.READ_BUDGET`` bytes
per read, sized from the latest step), then:

1. the union of the steps is downsampled to ``max_steps``, to ``MAX_CELLS`` values served (of
   the one signal asked for, or of all) and ``MAX_DECODED_CELLS`` values decoded (evenly
   spaced, the first and the latest always kept; ``downsampled`` says so);
2. only the kept steps' JSON is decoded (cached per stored write), values kept in their stored
   encoding (numbers, "NaN"/"Infinity"/"-Infinity", null; anything else is null with a note);
3. node ids are matched against the run's latest architecture (``unmatched``) and the findings
   come from ``signals.findings.find(arch, steps, series)`` when that module is installed.
A complete answer is cached until any of the run's signal series changes.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Dict, List, Optional, Tuple

from tensorboard.data import provider

from tensorboard_archviz import metadata, reader, util

logger = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = 1000
MAX_STEPS_LIMIT = 100_000
# Values (nodes x steps of the keys served) one answer holds at most: about 16 MB of JSON.
MAX_CELLS = 2_000_000
# Values of every key decoded for one answer (the findings look at all keys): memory bound.
MAX_DECODED_CELLS = 8_000_000
# Supported version of the stored signal JSON (a newer one is read as far as possible, said).
SIGNALS_VERSION = 1
_NON_FINITE = ("NaN", "Infinity", "-Infinity")
# Estimated memory bounds of the caches (parsed signal JSON: about 2 bytes per stored byte,
# measured with tracemalloc on 800-node steps, as ids repeat; an answer about 40 bytes per value).
DECODED_CACHE_BYTES = 384 * 1024 * 1024
ANSWER_CACHE_BYTES = 256 * 1024 * 1024


def known_key(key: str) -> bool:
    """Whether `key` names a signal (a catalog key or ``values.<name>``)."""
    from tensorboard_archviz.signals import catalog

    try:
        catalog.describe(key)
    except KeyError:
        return False
    return True


def signal_tags(tags) -> List[str]:
    """The signal tags among a run's archviz tags: SIGNALS_TAG first, then values tags."""
    out = [metadata.SIGNALS_TAG] if metadata.SIGNALS_TAG in tags else []
    return out + sorted(t for t in tags if metadata.name_from_values_tag(t) is not None)


def runs_with_signals(listing: Dict[str, Dict[str, Any]]) -> List[str]:
    """Runs of a ``list_tensors`` listing (plugin archviz) that hold signals."""
    return sorted(run for run, tags in listing.items() if signal_tags(tags))


def evenly(steps: List[int], limit: int) -> List[int]:
    """At most `limit` of the sorted `steps`, evenly spaced, first and last always kept."""
    if len(steps) <= limit:
        return list(steps)
    if limit == 1:
        return [steps[-1]]
    last = len(steps) - 1
    picks = sorted({round(i * last / (limit - 1)) for i in range(limit)})
    return [steps[i] for i in picks]


class SignalsReader:
    """The ``signals`` answers of the runs behind a data provider (see the module doc)."""

    def __init__(self, data_provider, arch_reader: reader.ArchitectureReader,
                 read_budget: int = reader.READ_BUDGET, max_cells: int = MAX_CELLS):
        self.data_provider = data_provider
        self.arch_reader = arch_reader
        self.read_budget = read_budget
        self.max_cells = max_cells
        self.answers = reader.ByteCache(ANSWER_CACHE_BYTES)
        self.decoded = reader.ByteCache(DECODED_CACHE_BYTES)  # parsed JSON per stored write

    def listing(self, ctx, eid: str, run: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
        """run -> {tag: TensorTimeSeries} of the signal tags (every run, or `run` only)."""
        listing = self.data_provider.list_tensors(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME,
            run_tag_filter=None if run is None else provider.RunTagFilter(runs=[run]))
        return {r: {t: tags[t] for t in signal_tags(tags)} for r, tags in listing.items()
                if signal_tags(tags)}

    def answer(self, ctx, eid: str, run: str, signal: Optional[str] = None,
               max_steps: int = DEFAULT_MAX_STEPS) -> Dict[str, Any]:
        """The route's JSON (see http_api.md); ReadError 404/400/422 otherwise."""
        return self._answer(ctx, eid, run, signal, max_steps)[0]

    def document(self, ctx, eid: str, run: str, signal: Optional[str] = None,
                 max_steps: int = DEFAULT_MAX_STEPS) -> reader.Document:
        """The route's answer as served bytes (JSON, gzip, ETag), built once per state."""
        full, key = self._answer(ctx, eid, run, signal, max_steps)
        doc_key = ("bytes", signal) + key
        doc = self.answers.get(doc_key)
        if doc is None:
            doc = reader.Document.of_json(self._slice(full, run, signal))
            self.answers.put(doc_key, doc, doc.cost)
        return doc

    def _answer(self, ctx, eid: str, run: str, signal: Optional[str], max_steps: int):
        """(the answer holding every key, its cache key), checked against `signal`."""
        series_by_tag = self.listing(ctx, eid, run).get(run)
        if not series_by_tag:
            raise reader.ReadError(404, "run %r has no layer signals" % run)
        mark = tuple(sorted((tag, s.max_step, s.max_wall_time)
                            for tag, s in series_by_tag.items()))
        key = (eid, run, mark, self._arch_mark(ctx, eid, run), max_steps, signal)
        full = self.answers.get(key)
        if full is None:
            full = self._build(ctx, eid, run, series_by_tag, max_steps, signal)
            cells = sum(len(rows) for rows in full["series"].values()) * len(full["steps"])
            self.answers.put(key, full, 40 * cells + 4096)
        if signal is not None and signal not in full["series"]:
            raise reader.ReadError(404, "run %r has no signal %r; it holds: %s"
                                   % (run, signal, ", ".join(full["series"]) or "none"))
        return (full if signal is None else self._slice(full, run, signal)), key

    @staticmethod
    def _slice(full: Dict[str, Any], run: str, signal: Optional[str]) -> Dict[str, Any]:
        if signal is None or set(full["series"]) == {signal}:
            return full
        out = dict(full)
        out["series"] = {signal: full["series"][signal]}
        out["unmatched"] = {k: v for k, v in full["unmatched"].items() if k == signal}
        return out

    def _arch_mark(self, ctx, eid: str, run: str):
        series = self.arch_reader.list_series(ctx, eid, run).get(run)
        return None if series is None else (series.max_step, series.max_wall_time)

    # -- building one answer -----------------------------------------------------------------
    def _build(self, ctx, eid: str, run: str, series_by_tag: Dict[str, Any],
               max_steps: int, signal: Optional[str]) -> Dict[str, Any]:
        notes: List[str] = []
        datums: Dict[str, Dict[int, Any]] = {}
        per_key: Dict[str, int] = {}
        for tag, series in series_by_tag.items():
            note = reader.version_note(series, run, tag)
            if note:
                notes.append(note)
            points, sizes, tag_notes = self._read_tag(ctx, eid, run, tag)
            notes.extend(tag_notes)
            datums[tag] = points
            per_key.update(sizes)
        all_steps = sorted({s for points in datums.values() for s in points})
        served = max(1, per_key.get(signal, 1) if signal else sum(per_key.values()))
        decoded = max(1, sum(per_key.values()))
        limit = max(1, min(max_steps, self.max_cells // served, MAX_DECODED_CELLS // decoded))
        steps = evenly(all_steps, limit)
        if len(steps) < len(all_steps) and limit < max_steps:
            notes.append("%d of %d steps shown: an answer holds at most %s values (%s per "
                         "step here)" % (len(steps), len(all_steps),
                                         format(self.max_cells, ","), format(served, ",")))
        series = self._series(eid, run, datums, steps, notes)
        arch_step, arch = self._architecture(ctx, eid, run, notes)
        return self._assemble(run, steps, len(all_steps), series, arch_step, arch, notes)

    def _read_tag(self, ctx, eid: str, run: str, tag: str):
        """({step: datum}, {key: node ids at the latest step}, notes): one bounded read."""
        dp = self.data_provider
        latest = reader.read_series(dp, ctx, eid, run, tag, 1, "signals")
        if not latest:
            return {}, {}, []
        raw = self._raw(latest[-1], run, tag)
        size = max(len(raw or b""), 1)
        fit = max(1, self.read_budget // size)
        notes = []
        datums = latest
        while fit > 1:
            try:
                datums = reader.read_series(dp, ctx, eid, run, tag, fit, "signals")
                break
            except reader.TooLarge:
                fit //= 2
        if len(datums) >= fit and fit < MAX_STEPS_LIMIT:
            notes.append("tag %r of run %r is too large to read at once: the latest %d steps "
                         "and a sample of the others are used (each step is about %.1f MB)"
                         % (tag, run, fit, size / 1e6))
        kept = reader.latest_per_step(datums)
        sizes: Dict[str, int] = {}
        for datum in kept[:-6:-1]:  # the latest readable of the last five sizes the answer
            decoded = self._decoded(eid, run, tag, datum, [])
            if decoded is not None:
                sizes = {key: len(rows) for key, rows in decoded.items()}
                break
        return {d.step: d for d in kept}, sizes, notes

    @staticmethod
    def _raw(datum, run: str, tag: str) -> Optional[bytes]:
        value = datum.numpy
        if getattr(value, "shape", None) != () or getattr(value, "dtype", None) is None \
                or value.dtype.kind not in ("O", "S", "U"):
            return None
        item = value.item()
        return item.encode("utf-8", "surrogatepass") if isinstance(item, str) else bytes(item)

    def _decoded(self, eid: str, run: str, tag: str, datum,
                 notes: List[str]) -> Optional[Dict[str, Dict[str, Any]]]:
        """{key: {node_id: stored value}} of one stored write (cached), None when unreadable."""
        key = (eid, run, tag, datum.step, datum.wall_time)
        hit = self.decoded.get(key)
        if hit is None:
            raw = self._raw(datum, run, tag)
            hit = decode_step(raw, tag)
            self.decoded.put(key, hit, 2 * len(raw or b"") + 256)
        result, problem = hit
        if problem is not None:
            notes.append("run %r tag %r step %s: %s" % (run, tag, reader.step_string(datum.step),
                                                       problem))
        return result

    def _series(self, eid: str, run: str, datums: Dict[str, Dict[int, Any]], steps: List[int],
                notes: List[str]) -> Dict[str, Dict[str, List[Any]]]:
        """KEY -> NODE_ID -> [value per step in `steps`, None where absent]."""
        before = len(notes)
        columns: Dict[str, List[Dict[str, Any]]] = {}  # key -> one {node: value} per step
        empty: Dict[str, Any] = {}
        for i, step in enumerate(steps):
            for tag, points in datums.items():
                datum = points.get(step)
                decoded = None if datum is None else self._decoded(eid, run, tag, datum, notes)
                for key, values in (decoded or empty).items():
                    columns.setdefault(key, [empty] * len(steps))[i] = values
        if len(notes) - before > 10:  # one note per unreadable step: keep the list short
            notes[before + 10:] = ["... and %d more unreadable steps" % (len(notes) - before - 10)]
        return {key: _rows(cols) for key, cols in columns.items()}

    def _architecture(self, ctx, eid: str, run: str, notes: List[str]):
        try:
            return self.arch_reader.load(ctx, eid, run, None)
        except reader.ReadError as e:
            if e.code != 404:
                notes.append("the architecture of run %r cannot be read, node ids are not "
                             "matched: %s" % (run, e.message))
            return None, None

    def _assemble(self, run: str, steps: List[int], total: int, series, arch_step, arch,
                  notes: List[str]) -> Dict[str, Any]:
        spans = (series.pop(SPAN_KEY, None) or {}).get("") or [None] * len(steps)
        ordered, unmatched = order_by_architecture(series, arch)
        findings, thresholds = run_findings(arch, steps, ordered, notes, spans)
        return {
            "run": run, "steps": steps, "step_strings": [reader.step_string(s) for s in steps],
            "total_steps": total, "downsampled": len(steps) < total,
            "architecture_step": arch_step,
            "architecture_step_string": None if arch_step is None else reader.step_string(
                arch_step),
            "signals": [describe(key, rows) for key, rows in ordered.items()],
            "series": ordered, "update_steps": spans,
            "findings": findings, "thresholds": thresholds,
            "unmatched": unmatched, "notes": notes,
        }


def _rows(cols: List[Dict[str, Any]]) -> Dict[str, List[Any]]:
    """NODE_ID -> [value per column]: a C-level transpose when every column holds the same ids
    in the same order (one writer, every step), else a lookup per cell."""
    first = list(cols[0]) if cols else []
    if first and all(len(col) == len(first) and list(col) == first for col in cols):
        return dict(zip(first, map(list, zip(*(col.values() for col in cols)))))
    nodes = dict.fromkeys(node for col in cols for node in col)
    return {node: [col.get(node) for col in cols] for node in nodes}


def decode_step(raw: Optional[bytes], tag: str) -> Tuple[Optional[Dict[str, Dict[str, Any]]],
                                                         Optional[str]]:
    """({key: {node_id: value}}, problem or None) of one stored signals/values JSON."""
    if raw is None:
        return None, "not a scalar string tensor"
    try:  # the C decoder raises RecursionError on deep nesting; NaN literals are not stored values
        data = json.loads(raw.decode("utf-8"), parse_constant=lambda name: _INVALID)
    except RecursionError:
        return None, "nested too deeply"
    except (UnicodeDecodeError, ValueError) as e:
        return None, "not JSON: %s" % util.one_line(e)
    if not isinstance(data, dict):
        return None, "expected a JSON object"
    name = metadata.name_from_values_tag(tag)
    groups = data.get("signals") if name is None else {"values." + name: data.get("values")}
    if not isinstance(groups, dict):
        return None, "no %r object" % ("signals" if name is None else "values")
    out: Dict[str, Dict[str, Any]] = {}
    bad = 0
    for key, values in groups.items():
        if isinstance(values, dict):
            out[key], n = _checked_values(values)
            bad += n
        else:
            bad += 1
    span = _update_steps(data) if name is None and "updates.ratio" in out else None
    if span is not None:
        out[SPAN_KEY] = {"": span}
    notes = []
    version = data.get("version")
    if isinstance(version, int) and version > SIGNALS_VERSION:
        notes.append("written by a newer tensorboard-archviz (signals version %d; this plugin "
                     "reads version %d)" % (version, SIGNALS_VERSION))
    if bad:
        notes.append("%d values are not numbers, \"NaN\", \"Infinity\", \"-Infinity\" or null: "
                     "served as null" % bad)
    return out, "; ".join(notes) or None


_INVALID = object()
# An internal series (never served as a signal): the training steps each write's
# ``updates.ratio`` spans (the stored ``meta.update_steps``), served as ``update_steps``.
SPAN_KEY = "meta.update_steps"


def _update_steps(data: Dict[str, Any]) -> Optional[int]:
    meta = data.get("meta")
    span = meta.get("update_steps") if isinstance(meta, dict) else None
    return span if type(span) is int and span > 0 else None


def _checked_values(values: Dict[str, Any]) -> Tuple[Dict[str, Any], int]:
    """(values with every invalid one replaced by None, how many were invalid); the dict itself
    when all are valid (the common case: finite numbers, checked at C speed)."""
    vals = values.values()
    try:
        if set(map(type, vals)) <= _NUMBERS and all(map(math.isfinite, vals)):
            return values, 0
    except OverflowError:  # an integer beyond float range: checked one by one below
        pass
    bad = [node for node, v in values.items() if not _valid(v)]
    if not bad:
        return values, 0
    fixed = dict(values)
    for node in bad:
        fixed[node] = None
    return fixed, len(bad)


_NUMBERS = {int, float}


def _valid(v: Any) -> bool:
    t = type(v)
    if t is float:
        return math.isfinite(v)  # 1e999 parses to inf: not a stored encoding
    return t is int or v is None or (t is str and v in _NON_FINITE)


def order_by_architecture(series: Dict[str, Dict[str, List[Any]]], arch):
    """(series with node ids in the architecture's order, then the others; unmatched ids per key)."""
    if arch is None:
        return series, {}
    order = {n.id: i for i, n in enumerate(arch.nodes)}
    ordered, unmatched = {}, {}
    for key, rows in series.items():
        ids = sorted(rows, key=lambda node: (order.get(node, len(order)), ))
        ordered[key] = {node: rows[node] for node in ids}
        missing = [node for node in ids if node not in order]
        if missing:
            unmatched[key] = missing
    return ordered, unmatched


def describe(key: str, rows: Dict[str, List[Any]]) -> Dict[str, Any]:
    """The descriptor of one key present in the run (values.<name>: log only when all > 0)."""
    from tensorboard_archviz.signals import catalog

    try:
        desc = catalog.describe(key)
    except KeyError:
        desc = {"key": key, "label": key, "unit": "", "scale": "linear",
                "description": "A signal this version of the plugin does not know (written by "
                               "a newer tensorboard-archviz?)."}
    if key.startswith("values."):
        numbers = [v for row in rows.values() for v in row if v is not None]
        positive = bool(numbers) and all(
            isinstance(v, (int, float)) and v > 0 or v == "Infinity" for v in numbers)
        desc["scale"] = "log" if positive else "linear"
    return desc


def run_findings(arch, steps: List[int], series, notes: List[str],
                 update_steps: Optional[List[Optional[int]]] = None):
    """(findings, thresholds) from ``signals.findings.find``; ([], {}) when it is not there."""
    try:
        from tensorboard_archviz.signals import findings as findings_lib
    except ImportError:
        return [], {}
    try:
        found, thresholds = findings_lib.find(arch, steps, series, update_steps=update_steps)
        return list(found), dict(thresholds)
    except Exception as e:  # noqa: BLE001 - findings never take the answer down
        logger.warning("archviz: computing findings failed", exc_info=True)
        notes.append("findings could not be computed: %s" % util.one_line(e))
        return [], {}
