"""Reading the plugin's time series through a TensorBoard ``DataProvider`` without letting a
stored claim allocate.

TensorBoard decodes a stored ``TensorProto`` with ``tensor_util.make_ndarray``, which trusts the
proto's shape: a 190-byte proto claiming float shape [2^20, 2^20] with one value asks numpy for
4 TiB (``MemoryError``), a string tensor claiming 10^9 elements builds a 10^9-pointer array
(8 GB and more), and the legacy loader makes one blob reference per claimed element of a blob
sequence. So before anything is decoded, the claimed size of every proto of the series is
checked against ``CLAIM_LIMIT`` (the plugin's own tensors are one string, or two blobs):

- TensorBoard's Rust data server (``--load_fast=true``, ``GrpcDataProvider``): the series is
  read over the provider's gRPC stub as raw protos, checked, then decoded as TensorBoard does;
- the legacy loader (``MultiplexerDataProvider``) and the CLI's ``LocalEventFilesProvider``:
  the stored protos of the series are checked, then the provider reads them;
- any other data provider: read through the public API (the caller still turns a
  ``MemoryError`` into that run's error).

``ClaimTooLarge`` says which step claims what; ``reader`` turns it into a 422 naming the run
and the tag.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional

from tensorboard.compat.tensorflow_stub import dtypes
from tensorboard.data import provider
from tensorboard.util import tensor_util

from tensorboard_archviz import metadata

# Decoded bytes one stored tensor may claim (shape x item size). The plugin writes rank-0
# strings and two-blob sequences; 64 MiB leaves room for any honest tensor and refuses claims.
CLAIM_LIMIT = 64 * 1024 * 1024
# A decoded string element costs at least a pointer in numpy's object array.
STRING_ITEM_BYTES = 8
# The legacy loader builds one blob reference (about 150 bytes) per claimed blob.
BLOB_REFERENCE_BYTES = 150

_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
                7: "string", 8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16",
                17: "uint16", 18: "complex128", 19: "float16"}


class ClaimTooLarge(Exception):
    """A stored tensor claims more memory than a read may allocate (message: the claim)."""

    def __init__(self, step: int, message: str):
        super().__init__(message)
        self.step = step
        self.message = message


def claimed_elements(proto) -> Optional[int]:
    """How many elements a TensorProto claims (exact Python int), None for a negative dim."""
    count = 1
    for dim in proto.tensor_shape.dim:
        if dim.size < 0:
            return None
        count *= dim.size
    return count


def claim_problem(proto, item_bytes: Optional[int] = None) -> Optional[str]:
    """Why decoding `proto` would allocate more than CLAIM_LIMIT, or None."""
    count = claimed_elements(proto)
    if count is None or count <= 1:
        return None  # a negative dim makes the decoder raise ValueError: no allocation
    if item_bytes is None:
        try:
            item_bytes = max(STRING_ITEM_BYTES if proto.dtype == 7 else
                             dtypes.as_dtype(proto.dtype).as_numpy_dtype().itemsize,
                             1)
        except (TypeError, ValueError, KeyError):
            return None  # an unknown dtype: the decoder refuses it without allocating
    claimed = count * item_bytes
    if claimed <= CLAIM_LIMIT:
        return None
    shape = "[%s]" % ", ".join(str(d.size) for d in proto.tensor_shape.dim)
    return ("a %s tensor claims shape %s (%s elements, %s when decoded), over the %d MiB a "
            "read may allocate" % (_DTYPE_NAMES.get(proto.dtype, "dtype %d" % proto.dtype),
                                   shape, format(count, ","), _size_text(claimed),
                                   CLAIM_LIMIT >> 20))


def _size_text(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return "%.1f %s" % (n / size, unit)
    return "%d bytes" % n


def check_events(events: Iterable[Any], item_bytes: Optional[int] = None) -> None:
    """Raise ClaimTooLarge for the first event (``.step``, ``.tensor_proto``) over the bound."""
    for event in events:
        problem = claim_problem(event.tensor_proto, item_bytes)
        if problem is not None:
            raise ClaimTooLarge(event.step, problem)


def stored_events(data_provider, run: str, tag: str) -> Optional[List[Any]]:
    """The stored (step, tensor_proto) events of a series when the provider exposes them."""
    events = getattr(data_provider, "tensor_events", None)  # LocalEventFilesProvider
    if callable(events):
        return events(run, tag)
    mux = getattr(data_provider, "_multiplexer", None)  # TensorBoard's legacy loader
    if mux is None or not hasattr(mux, "Tensors"):
        return None
    try:
        return list(mux.Tensors(run, tag))
    except KeyError:
        return []  # no such run or tag: the provider's read answers nothing either


def _is_grpc(data_provider) -> bool:
    return type(data_provider).__name__ == "GrpcDataProvider" and hasattr(data_provider, "_stub")


def read_tensors(data_provider, ctx, eid: str, run: str, tag: str,
                 downsample: int) -> List[provider.TensorDatum]:
    """The tensor datums of one series (at most `downsample`, the latest included), every
    stored claim checked before anything is decoded; ClaimTooLarge otherwise."""
    if _is_grpc(data_provider):
        return _grpc_read_tensors(data_provider, eid, run, tag, downsample)
    events = stored_events(data_provider, run, tag)
    if events is not None:
        check_events(events)
    result = data_provider.read_tensors(
        ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME, downsample=downsample,
        run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]))
    return list(result.get(run, {}).get(tag, []))


def _grpc_read_tensors(data_provider, eid: str, run: str, tag: str, downsample: int):
    """GrpcDataProvider.read_tensors for one series, with the claims checked before decoding."""
    from tensorboard.data import grpc_provider
    from tensorboard.data.proto import data_provider_pb2

    req = data_provider_pb2.ReadTensorsRequest(experiment_id=eid)
    req.plugin_filter.plugin_name = metadata.PLUGIN_NAME
    req.run_tag_filter.runs.names[:] = [run]
    req.run_tag_filter.tags.names[:] = [tag]
    req.downsample.num_points = downsample
    with grpc_provider._translate_grpc_error():  # TensorBoard's own error mapping
        res = data_provider._stub.ReadTensors(req)
    points = [(step, wt, value) for run_entry in res.runs for tag_entry in run_entry.tags
              for step, wt, value in zip(tag_entry.data.step, tag_entry.data.wall_time,
                                         tag_entry.data.value)]
    for step, _, value in points:
        problem = claim_problem(value)
        if problem is not None:
            raise ClaimTooLarge(step, problem)
    return [provider.TensorDatum(step=step, wall_time=wt, numpy=tensor_util.make_ndarray(value))
            for step, wt, value in points]


def read_blob_sequences(data_provider, ctx, eid: str, run: str, tag: str,
                        downsample: int) -> List[provider.BlobSequenceDatum]:
    """The blob-sequence datums of one series; the legacy loader's claimed blob counts are
    checked first (the Rust data server builds references from the stored blobs only)."""
    events = None if _is_grpc(data_provider) else stored_events(data_provider, run, tag)
    if events is not None:
        check_events(events, BLOB_REFERENCE_BYTES)
    result = data_provider.read_blob_sequences(
        ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME, downsample=downsample,
        run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]))
    return list(result.get(run, {}).get(tag, []))
