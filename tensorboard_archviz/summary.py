"""Architecture / filter grids -> Summary protos, and writing them with TensorBoard's event writer.

Nothing here imports TensorFlow, Keras or torch: protos come from ``tensorboard.compat.proto``
and records are framed by TensorBoard's own ``RecordWriter`` (local files) or written by its
``EventFileWriter`` (remote file systems; the writer ``torch.utils.tensorboard.SummaryWriter``
uses), so this works on every Keras backend.
"""

from __future__ import annotations

import errno
import io
import itertools
import json
import os
import socket
import threading
import time
from typing import Any, Dict, Optional, Union

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.util import tensor_util

from tensorboard_archviz import metadata, schema, util


def architecture_json(arch: Union[schema.Architecture, Dict[str, Any]]) -> bytes:
    """The compact JSON the architecture is stored as, after validation and the depth check.

    Raises ``schema.SchemaError`` naming the field: for a document that fails the schema, and
    for one nested deeper than ``util.MAX_JSON_DEPTH`` levels (readers could not decode it).
    """
    if isinstance(arch, dict):
        arch = schema.from_dict(arch)
    try:
        text = schema.to_json(arch, separators=(",", ":"))
    except RecursionError:  # thousands of levels: name the field from the objects
        text, problem = None, util.value_depth_problem(schema.to_dict(arch))
    else:
        problem = util.json_depth_problem(text)
    if problem is not None:
        raise schema.SchemaError("cannot write the architecture: " + problem)
    return text.encode("utf-8")


def architecture_pb(arch: Union[schema.Architecture, Dict[str, Any]],
                    tag: str = metadata.ARCHITECTURE_TAG) -> summary_pb2.Summary:
    """A Summary holding the architecture as a rank-0 DT_STRING tensor of its JSON.

    The architecture is validated first, so a bad extractor fails here, not in the dashboard;
    a document nested deeper than ``util.MAX_JSON_DEPTH`` levels is refused (SchemaError).
    """
    payload = architecture_json(arch)
    tensor = tensor_util.make_tensor_proto(np.array(payload, dtype=object))
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_architecture_metadata(), tensor=tensor)
    return summary


def filter_grid_pb(node_id: str, png: bytes, tiles: Dict[str, Any]) -> summary_pb2.Summary:
    """A Summary holding one layer's filter grid: blob sequence ``[png, tiles_json]``."""
    if not isinstance(png, (bytes, bytearray)) or not bytes(png).startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("filter grid for %r is not PNG data" % node_id)
    problem = util.value_depth_problem(tiles)
    if problem is not None:
        raise ValueError("filter grid for %r: tile metadata %s" % (node_id, problem))
    meta = json.dumps(tiles, separators=(",", ":")).encode("utf-8")
    tensor = tensor_util.make_tensor_proto(np.array([bytes(png), meta], dtype=object))
    summary = summary_pb2.Summary()
    summary.value.add(tag=metadata.filters_tag(node_id),
                      metadata=metadata.create_filters_metadata(node_id), tensor=tensor)
    return summary


def _json_tensor_pb(doc: Dict[str, Any], tag: str, md: Any) -> summary_pb2.Summary:
    problem = util.value_depth_problem(doc)
    if problem is not None:
        raise ValueError("cannot write %s: %s" % (tag, problem))
    payload = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
    tensor = tensor_util.make_tensor_proto(np.array(payload, dtype=object))
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=md, tensor=tensor)
    return summary


def signals_pb(doc: Dict[str, Any]) -> summary_pb2.Summary:
    """A Summary holding one step of layer signals (``signals.write.signals_doc``): a rank-0
    DT_STRING tensor of its JSON under ``metadata.SIGNALS_TAG``. Raises ValueError for a NaN
    left unencoded or a document nested too deep."""
    return _json_tensor_pb(doc, metadata.SIGNALS_TAG, metadata.create_signals_metadata())


def values_pb(name: str, doc: Dict[str, Any]) -> summary_pb2.Summary:
    """A Summary holding one step of user layer values `name` (``signals.write.values_doc``)
    under ``metadata.values_tag(name)``."""
    return _json_tensor_pb(doc, metadata.values_tag(name), metadata.create_values_metadata(name))


_FILE_UID = itertools.count()


class _LocalEventFile:
    """A local event file written with TensorBoard's own RecordWriter, synchronously.

    TensorBoard's EventFileWriter does file I/O through ``tf.io.gfile``, which imports all of
    TensorFlow when it is installed (seconds, and hundreds of MB, in a Keras-on-torch or PyTorch
    process). For local directories the same records go through a plain file instead.

    Each record reaches the OS whole or not at all: a write that fails half-way (disk full, a
    KeyboardInterrupt between two partial writes) is cut off again, so the file stays readable
    and later records are not lost behind a broken one. A file removed while open (its run
    directory deleted during training) is re-created on the next write, as TensorFlow's own
    EventsWriter does, instead of writing into a deleted file.
    """

    def __init__(self, logdir: str, filename_suffix: str, name_offset: float = 0.0):
        self._logdir = logdir
        self._suffix = filename_suffix
        self._name_offset = name_offset  # seconds subtracted from the time in the file name
        self.reopened = 0  # how many times the file vanished and was re-created
        self._open()

    def _open(self) -> None:
        os.makedirs(self._logdir, exist_ok=True)
        self.path = os.path.join(self._logdir, "events.out.tfevents.%010d.%s.%s.%s%s" % (
            time.time() - self._name_offset, socket.gethostname(), os.getpid(), next(_FILE_UID),
            self._suffix))
        self._file = open(self.path, "wb", buffering=0)
        self._write_record(event_pb2.Event(
            wall_time=time.time(), file_version="brain.Event:2",
            source_metadata=event_pb2.SourceMetadata(writer="tensorboard_archviz")
        ).SerializeToString())

    def vanished(self) -> bool:
        """Whether the file was removed since it was opened (the next write re-creates it)."""
        return not os.path.exists(self.path)

    def add_event(self, event: event_pb2.Event) -> None:
        if self.vanished():
            try:
                self._file.close()
            except OSError:
                pass
            self._open()
            self.reopened += 1
        self._write_record(event.SerializeToString())

    def _write_record(self, data: bytes) -> None:
        from tensorboard.summary.writer.record_writer import RecordWriter

        framed = io.BytesIO()
        RecordWriter(framed).write(data)
        record = memoryview(framed.getvalue())
        start = self._file.tell()
        try:
            done = 0
            while done < len(record):
                n = self._file.write(record[done:])
                if not n:
                    raise OSError(errno.EIO, "short write to %s" % self.path)
                done += n
        except BaseException:
            try:  # cut the partial record off again
                self._file.truncate(start)
                self._file.seek(start)
            except OSError:
                pass
            raise

    def flush(self) -> None:
        pass  # unbuffered: every record is handed to the OS by add_event

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class ArchVizWriter:
    """Writes archviz summaries into one log directory with TensorBoard's own event writer.

    Local directories are written through TensorBoard's ``RecordWriter`` on a plain file (no
    TensorFlow import); remote ones (``gs://``, ``s3://``, ...) through TensorBoard's
    ``EventFileWriter``. Every write is flushed at once, so a process killed right after loses
    nothing. Errors creating or writing the file are raised as ``OSError``.

    ``sort_first=True`` dates the file name (not the events) 2 s early. TensorBoard's legacy
    loader (``--load_fast=false``) reads a run's event files in name order and never returns to
    an older one; a file created alongside another writer's (Keras' ``TensorBoard`` callback
    creates its file in ``set_model``, just like ours) then sorts first, so the other writer's
    data keeps being read while training runs.
    """

    def __init__(self, logdir: str, filename_suffix: str = ".archviz", sort_first: bool = False):
        self.logdir = os.fspath(logdir)
        if "://" in self.logdir:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            self._writer = EventFileWriter(self.logdir, filename_suffix=filename_suffix)
        else:
            self._writer = _LocalEventFile(self.logdir, filename_suffix,
                                           name_offset=2.0 if sort_first else 0.0)
        self._lock = threading.Lock()

    def add_summary(self, summary: summary_pb2.Summary, step: Optional[int] = None,
                    wall_time: Optional[float] = None) -> None:
        event = event_pb2.Event(summary=summary,
                                wall_time=time.time() if wall_time is None else wall_time)
        if step is not None:
            event.step = int(step)
        with self._lock:
            self._writer.add_event(event)
            self._writer.flush()

    def add_architecture(self, arch: Union[schema.Architecture, Dict[str, Any]],
                         step: Optional[int] = None) -> None:
        self.add_summary(architecture_pb(arch), step)

    def add_filter_grid(self, node_id: str, png: bytes, tiles: Dict[str, Any],
                        step: Optional[int] = None) -> None:
        self.add_summary(filter_grid_pb(node_id, png, tiles), step)

    def flush(self) -> None:
        with self._lock:
            self._writer.flush()

    def vanished(self) -> bool:
        """Whether the local event file was removed (e.g. its run directory deleted) since it was
        opened; the next write re-creates it. Always False for remote file systems."""
        check = getattr(self._writer, "vanished", None)
        return bool(check()) if check is not None else False

    def close(self) -> None:
        with self._lock:
            self._writer.close()

    def __enter__(self) -> "ArchVizWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
