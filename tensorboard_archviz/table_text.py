"""The text table of ``archviz summary``: a formatter over an Architecture document.

Rows in the document's order (execution order), nested by the ``parent`` chain; every figure is
the document's own (container sums and model totals come from ``totals.fill_totals``, never summed
here). The conventions are the web table's: null MACs (unknown, or not applicable such as a model
input) print as ``—`` (``format.ts`` ``UNKNOWN``), a lower bound as "at least N". Every printed
string goes through ``util.strip_control`` (no escape sequences, no control or bidi characters,
no newlines in a name).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import sys
import textwrap
from typing import List, Optional, Sequence

from tensorboard_archviz import schema, totals, util

UNKNOWN = "\u2014"  # the dashboard's format.ts UNKNOWN
HEADER = ["Layer (type)", "Output shape", "Params", "MACs", "Connected to"]
GAP = 2


def _fmt_shape(shapes: Optional[List[Optional[List[Optional[int]]]]]) -> str:
    """Shapes as text; inside one shape the spaces are non-breaking (a shape wraps as a unit)."""
    if shapes is None:
        return "?"
    parts = []
    for s in shapes:
        if s is None:
            parts.append("?")
        else:
            dims = ",\u00a0".join("None" if d is None else str(d) for d in s)
            parts.append("(" + dims + (",)" if len(s) == 1 else ")"))
    return " ".join(parts) if parts else "-"


def _fmt_params(node: schema.Node) -> str:
    t, nt = int(node.params.get("trainable", 0)), int(node.params.get("non_trainable", 0))
    text = "{:,}".format(t + nt)
    return text + " ({:,} NT)".format(nt) if nt else text


def _fmt_macs(node: schema.Node) -> str:
    """As the web table's MACs cell (format.ts fmtNodeMacs): UNKNOWN when null (unknown or not
    applicable, e.g. a model input; `macs_reason` says why), "at least N" when the reason says
    so or `macs_complete` is false."""
    if node.macs is None:
        return UNKNOWN
    at_least = node.macs_complete is False or str(node.macs_reason or "").startswith("at least")
    return ("at least " if at_least else "") + "{:,}".format(node.macs)


def _depths(arch: schema.Architecture) -> dict:
    """Nesting depth of every node from its `parent` chain (not from its position)."""
    parent = {n.id: n.parent for n in arch.nodes}
    depth: dict = {}
    for n in arch.nodes:
        chain, cur = [], n.id
        while cur is not None and cur not in depth and len(chain) <= len(parent):
            chain.append(cur)
            cur = parent.get(cur)
        base = depth.get(cur, -1) if cur is not None else -1
        for k, node_id in enumerate(reversed(chain)):
            depth[node_id] = base + 1 + k
    return depth


def table_rows(arch: schema.Architecture) -> List[List[str]]:
    """One row of cells per node, in the order the JSON lists them (execution order): layer
    id (indented by its parent chain), output shapes, params, MACs per example, inputs."""
    depth = _depths(arch)
    incoming: dict = {}
    for e in arch.edges:
        incoming.setdefault(e.target, []).append(e.source)
    rows = []
    for n in arch.nodes:
        label = n.id if n.name == n.id or n.id.endswith(n.name) else "%s [%s]" % (n.id, n.name)
        cells = ["  " * depth[n.id] + "%s (%s)" % (label, n.class_name),
                 _fmt_shape(n.output_shapes), _fmt_params(n), _fmt_macs(n),
                 ", ".join(incoming.get(n.id, []))]
        rows.append([util.strip_control(c) for c in cells])
    return rows


def fmt_bytes(n: Optional[int]) -> str:
    """Bytes in decimal units as torchinfo prints them: 512 B, 1.23 MB, 44.6 MB."""
    if n is None:
        return UNKNOWN
    v, unit = float(n), 0
    units = ["B", "kB", "MB", "GB", "TB"]
    while abs(v) >= 1000 and unit < len(units) - 1:
        v /= 1000
        unit += 1
    if unit == 0:
        return "%d B" % n
    return ("%.0f" if v >= 100 else "%.1f" if v >= 10 else "%.2f") % v + " " + units[unit]


def _macs_line(arch: schema.Architecture) -> Optional[str]:
    """The MACs footer line: the model's per-example figure ("at least" when some node's is
    unknown); a schema 1 document says its figures are in the old convention."""
    m = arch.model
    macs, complete = m.macs, m.macs_complete
    if not isinstance(macs, int) or isinstance(macs, bool):  # a document without model totals
        filled = copy.deepcopy(arch)
        totals.fill_totals(filled)  # the one place figures are summed
        macs, complete = filled.model.macs, filled.model.macs_complete
        if not macs:
            return None
    text = "{}{:,}".format("" if complete is not False else "at least ", macs)
    if m.macs_convention == schema.MACS_CONVENTION_V1:
        return "MACs: %s (%s)" % (text, schema.MACS_CONVENTION_V1)
    return "MACs per example: " + text


def footer_lines(arch: schema.Architecture) -> List[str]:
    """Totals under the table: params, MACs per example, memory (params / buffers /
    activations per example) when the document has them."""
    m = arch.model
    out = ["Total params: {:,}".format(m.total_params),
           "Trainable params: {:,}".format(m.trainable_params),
           "Non-trainable params: {:,}".format(m.non_trainable_params)]
    macs = _macs_line(arch)
    if macs:
        out.append(macs)
    mem = m.memory
    if isinstance(mem, dict):
        out.append("Memory: params %s, buffers %s, activations %s per example" % (
            fmt_bytes(mem.get("params_bytes")), fmt_bytes(mem.get("buffers_bytes")),
            fmt_bytes(mem.get("activations_bytes"))))
    if isinstance(m.optimizer_params, int):
        out.append("Optimizer variables (not counted above): {:,}".format(
            m.optimizer_params))
    return out


def _tokens_width(cell: str) -> int:
    """The narrowest a cell can be wrapped to without breaking a word (its indent included)."""
    indent = len(cell) - len(cell.lstrip(" "))
    words = re.split(r" +", cell.strip(" "))
    return indent + max((len(w) for w in words), default=0)


def _wrap(cell: str, width: int) -> List[str]:
    if len(cell) <= width:
        return [cell]
    indent = len(cell) - len(cell.lstrip(" "))
    sub = " " * min(indent + 2, max(0, width - 1))
    return textwrap.wrap(cell, width, subsequent_indent=sub, break_long_words=True,
                         break_on_hyphens=False) or [""]


def default_width() -> Optional[int]:
    """The terminal's width; None (no wrapping) when stdout is not a terminal and COLUMNS is
    not set."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return None


def render_table(arch: schema.Architecture, width: Optional[int] = None) -> str:
    """A model.summary()-like table. Every line fits `width` (None: no limit); cells wrap at
    spaces, never truncated; when even the narrowest columns do not fit, each layer becomes a
    block of "key: value" lines. A word longer than the whole width is the only thing ever split.
    """
    rows = table_rows(arch)
    natural = [max([len(HEADER[i])] + [len(r[i]) for r in rows]) for i in range(len(HEADER))]
    minimum = [max([_tokens_width(HEADER[i])] + [_tokens_width(r[i]) for r in rows])
               for i in range(len(HEADER))]
    limit = width if width else sum(natural) + GAP * (len(HEADER) - 1)
    gap = GAP if sum(minimum) + GAP * (len(HEADER) - 1) <= limit else 1
    gaps = gap * (len(HEADER) - 1)
    m = arch.model
    title = util.strip_control('Model: "%s" (%s, %s %s)' % (
        m.name, m.class_name, arch.framework, arch.framework_version))
    out: List[str] = []
    if sum(minimum) + gaps <= limit:
        widths = list(natural)
        while sum(widths) + gaps > limit:
            i = max(range(len(widths)), key=lambda k: widths[k] - minimum[k])
            widths[i] -= 1
        total_w = sum(widths) + gaps

        def line(cells: Sequence[str]) -> List[str]:
            wrapped = [_wrap(c, w) for c, w in zip(cells, widths)]
            height = max(len(x) for x in wrapped)
            return [(" " * gap).join((x[k] if k < len(x) else "").ljust(w)
                                     for x, w in zip(wrapped, widths)).rstrip()
                    .replace("\u00a0", " ") for k in range(height)]

        out += _wrap(title, limit)
        out.append("=" * total_w)
        out += line(HEADER)
        out.append("=" * total_w)
        for r in rows:
            out += line(r)
    else:  # one block per layer
        total_w = limit
        out += _wrap(title, limit)
        out.append("=" * total_w)
        for k, r in enumerate(rows):
            if k:
                out.append("-" * total_w)
            pad = " " * min(len(r[0]) - len(r[0].lstrip(" ")), limit // 3)
            out += _wrap(pad + r[0].lstrip(" "), limit)
            for key, value in zip(("output", "params", "MACs", "from"), r[1:]):
                if value:
                    out += _wrap("%s  %s: %s" % (pad, key, value), limit)
    out = [l.replace("\u00a0", " ") for l in out]
    out.append("=" * total_w)
    for f in footer_lines(arch):
        out += _wrap(util.strip_control(f), limit)
    return "\n".join(out)
