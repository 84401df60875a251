"""A TensorFlow-free TensorBoard ``DataProvider`` over a local logdir's event files (the CLI's).

TensorBoard's own loaders read files through ``tf.io.gfile``: the legacy one imports TensorFlow
when it is installed (seconds and hundreds of MB for a command that prints a table), and the
Rust data server is a subprocess that answers while it is still loading. This provider reads
the archviz time series of a local logdir once, completely, with plain file I/O: TFRecord
framing, ``Event`` protos and ``tensor_util.make_ndarray`` from TensorBoard itself. Everything
else (series, picking a step, decoding) is ``reader.ArchitectureReader``, as in the plugin.

Runs are named like TensorBoard names them (the directory relative to the logdir, "." for the
logdir itself); a truncated or corrupt record ends the reading of that file, as TensorBoard
does; the metadata of a tag is the first one written in each run.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

from tensorboard.compat.proto import event_pb2
from tensorboard.data import provider
from tensorboard.util import tensor_util

from tensorboard_archviz import bounded_reads, metadata


def records(path: str) -> Iterator[bytes]:
    """The records of one TFRecord file; stops at the first truncated or implausible one."""
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            if length > (1 << 40):
                return
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                return
            yield data


def _event_files(logdir: str) -> Iterator[Tuple[str, str]]:
    """(run, path) of every event file under `logdir`, runs and files in name order."""
    for root, dirs, files in os.walk(logdir):
        dirs.sort()
        run = os.path.relpath(root, logdir).replace(os.sep, "/")
        for name in sorted(files):
            if "tfevents" in name:
                yield run, os.path.join(root, name)


class LocalEventFilesProvider(provider.DataProvider):
    """Tensor time series of the archviz plugin in a local logdir, read once at construction."""

    def __init__(self, logdir: str):
        self._tensors: Dict[str, Dict[str, List[provider.TensorDatum]]] = {}
        self._content: Dict[Tuple[str, str], bytes] = {}
        for run, path in _event_files(logdir):
            self._read_file(run, path)

    def _read_file(self, run: str, path: str) -> None:
        try:
            for data in records(path):
                try:
                    event = event_pb2.Event.FromString(data)
                except Exception:  # noqa: BLE001 - a corrupt record ends the file
                    return
                if event.HasField("summary"):
                    self._add_summary(run, event)
        except OSError:
            return  # unreadable file: skipped, as TensorBoard skips it

    def _add_summary(self, run: str, event) -> None:
        for value in event.summary.value:
            key = (run, value.tag)
            if key not in self._content and value.HasField("metadata"):
                self._content[key] = (
                    value.metadata.plugin_data.content
                    if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME else None)
            if self._content.get(key) is None or not value.HasField("tensor"):
                continue
            datum = provider.TensorDatum(step=event.step, wall_time=event.wall_time,
                                         numpy=_LazyArray(value.tensor))
            self._tensors.setdefault(run, {}).setdefault(value.tag, []).append(datum)

    def tensor_events(self, run: str, tag: str) -> List[Any]:
        """The stored events of one series, undecoded (``.step``, ``.tensor_proto``): what
        ``bounded_reads`` checks before anything is decoded."""
        return [_StoredEvent(d.step, d.numpy.proto)
                for d in self._tensors.get(run, {}).get(tag, [])]

    # -- the DataProvider methods the reader uses ----------------------------------------------
    def list_tensors(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
        out: Dict[str, Dict[str, provider.TensorTimeSeries]] = {}
        for run, tags in self._selected(plugin_name, run_tag_filter):
            for tag, datums in tags.items():
                last = max(datums, key=lambda d: (d.step, d.wall_time))
                out.setdefault(run, {})[tag] = provider.TensorTimeSeries(
                    max_step=last.step, max_wall_time=max(d.wall_time for d in datums),
                    plugin_content=self._content[(run, tag)], description="", display_name="")
        return out

    def read_tensors(self, ctx=None, *, experiment_id, plugin_name, downsample=None,
                     run_tag_filter=None):
        out: Dict[str, Dict[str, List[provider.TensorDatum]]] = {}
        for run, tags in self._selected(plugin_name, run_tag_filter):
            for tag, datums in tags.items():
                kept = sorted(datums, key=lambda d: d.step)
                if downsample is not None and len(kept) > downsample:
                    kept = kept[len(kept) - downsample:]  # the latest ones
                out.setdefault(run, {})[tag] = [
                    provider.TensorDatum(step=d.step, wall_time=d.wall_time,
                                         numpy=d.numpy.value()) for d in kept]
        return out

    def _selected(self, plugin_name, run_tag_filter):
        if plugin_name != metadata.PLUGIN_NAME:
            return
        runs = getattr(run_tag_filter, "runs", None)
        tags = getattr(run_tag_filter, "tags", None)
        for run, series in self._tensors.items():
            if runs is None or run in runs:
                yield run, {t: d for t, d in series.items() if tags is None or t in tags}

    # -- the rest of the interface: this provider holds only archviz tensors --------------------
    def experiment_metadata(self, ctx=None, *, experiment_id):
        return provider.ExperimentMetadata()

    def list_plugins(self, ctx=None, *, experiment_id):
        return [metadata.PLUGIN_NAME] if self._tensors else []

    def list_runs(self, ctx=None, *, experiment_id):
        return [provider.Run(run_id=r, run_name=r, start_time=None) for r in sorted(self._tensors)]

    def list_scalars(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
        return {}

    def read_scalars(self, ctx=None, *, experiment_id, plugin_name, downsample=None,
                     run_tag_filter=None):
        return {}

    def read_last_scalars(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
        return {}


class _StoredEvent(NamedTuple):
    step: int
    tensor_proto: Any


class _LazyArray:
    """A TensorProto decoded only when read (a CLI reads one step of many); a proto whose shape
    claims more than ``bounded_reads.CLAIM_LIMIT`` is refused before numpy sees it."""

    def __init__(self, proto):
        self.proto = proto

    def value(self):
        problem = bounded_reads.claim_problem(self.proto)
        if problem is not None:
            raise ValueError(problem)
        return tensor_util.make_ndarray(self.proto)
