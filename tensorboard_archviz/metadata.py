"""Plugin name, tag names and SummaryMetadata builders/parsers for the archviz plugin.

Two kinds of time series are written under the plugin:
- the architecture: tag ``ARCHITECTURE_TAG``, a rank-0 DT_STRING tensor holding the Architecture
  JSON (``DATA_CLASS_TENSOR``);
- one filter grid per layer: tag ``filters_tag(node_id)``, a rank-1 DT_STRING blob sequence
  ``[png_bytes, tiles_json]`` (``DATA_CLASS_BLOB_SEQUENCE``; rank 1 because TensorBoard's Rust
  loader drops a rank-0 blob sequence; see docs/ARCHITECTURE.md).
- layer signals: tag ``SIGNALS_TAG``, one rank-0 DT_STRING JSON per step
  (``DATA_CLASS_TENSOR``), and user values ``values_tag(name)`` (same encoding; see
  http_api.md, route ``signals``).
The plugin-specific content of every SummaryMetadata is a small JSON object
``{"version": 1, "kind": "architecture" | "filters" | "signals" | "values", "layer"?, "name"?}``.
``version`` is ``PROTO_VERSION``; the reader says when a series was written by a newer version.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from tensorboard.compat.proto import summary_pb2

PLUGIN_NAME = "archviz"
# Version of the plugin-content encoding (not the Architecture schema: see schema.SCHEMA_VERSION).
PROTO_VERSION = 1

ARCHITECTURE_TAG = "archviz/architecture"
FILTERS_TAG_PREFIX = "archviz/filters/"
# Layer signals (see /tmp/team/signals_contract.md and http_api.md, route `signals`).
SIGNALS_TAG = "archviz/signals"
VALUES_TAG_PREFIX = "archviz/values/"

KIND_ARCHITECTURE = "architecture"
KIND_FILTERS = "filters"
KIND_SIGNALS = "signals"
KIND_VALUES = "values"
KINDS = (KIND_ARCHITECTURE, KIND_FILTERS, KIND_SIGNALS, KIND_VALUES)

# Index of each element inside a filter-grid blob sequence.
FILTERS_PNG_INDEX = 0
FILTERS_META_INDEX = 1


def filters_tag(node_id: str) -> str:
    """The tag of the filter-grid time series of one layer."""
    return FILTERS_TAG_PREFIX + node_id


def _after_prefix(tag: str, prefix: str) -> Optional[str]:
    """What follows `prefix` in `tag` (None when `tag` is not `prefix` + something)."""
    if tag.startswith(prefix) and len(tag) > len(prefix):
        return tag[len(prefix):]
    return None


def layer_from_filters_tag(tag: str) -> Optional[str]:
    """The node id encoded in a filter-grid tag, or None for any other tag."""
    return _after_prefix(tag, FILTERS_TAG_PREFIX)


def values_tag(name: str) -> str:
    """The tag of the user values series `name` (written by add_layer_values)."""
    return VALUES_TAG_PREFIX + name


def name_from_values_tag(tag: str) -> Optional[str]:
    """The values name encoded in a values tag, or None for any other tag."""
    return _after_prefix(tag, VALUES_TAG_PREFIX)


def _metadata(content: Dict[str, Any], data_class: int, description: str) -> summary_pb2.SummaryMetadata:
    md = summary_pb2.SummaryMetadata(
        summary_description=description,
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME,
            content=json.dumps(content, sort_keys=True).encode("utf-8"),
        ),
    )
    md.data_class = data_class
    return md


def create_architecture_metadata(description: str = "") -> summary_pb2.SummaryMetadata:
    """SummaryMetadata for an architecture summary (rank-0 string tensor)."""
    return _metadata({"version": PROTO_VERSION, "kind": KIND_ARCHITECTURE},
                     summary_pb2.DATA_CLASS_TENSOR, description)


def create_filters_metadata(node_id: str, description: str = "") -> summary_pb2.SummaryMetadata:
    """SummaryMetadata for one layer's filter grid (rank-1 blob sequence)."""
    return _metadata({"version": PROTO_VERSION, "kind": KIND_FILTERS, "layer": node_id},
                     summary_pb2.DATA_CLASS_BLOB_SEQUENCE, description)


def create_signals_metadata(description: str = "") -> summary_pb2.SummaryMetadata:
    """SummaryMetadata for one step of layer signals (rank-0 string tensor of JSON)."""
    return _metadata({"version": PROTO_VERSION, "kind": KIND_SIGNALS},
                     summary_pb2.DATA_CLASS_TENSOR, description)


def create_values_metadata(name: str, description: str = "") -> summary_pb2.SummaryMetadata:
    """SummaryMetadata for one step of user layer values `name` (rank-0 string tensor of JSON)."""
    return _metadata({"version": PROTO_VERSION, "kind": KIND_VALUES, "name": name},
                     summary_pb2.DATA_CLASS_TENSOR, description)


def parse_plugin_metadata(content: bytes) -> Dict[str, Any]:
    """Decode the plugin content of a SummaryMetadata; raises ValueError when it is unusable."""
    try:
        data = json.loads(bytes(content).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError("archviz plugin metadata is not JSON: %s" % e) from None
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        raise ValueError("archviz plugin metadata has no known kind: %r" % (data,))
    return data
