"""The bounded state a writer keeps between two writes, and the per-node sums of the signals.

``UpdateTracker`` is what ``updates.ratio`` (``‖ΔW‖/‖W‖`` since the previous write) needs: for
every parameter tensor a fixed random sample of at most ``catalog.UPDATE_SAMPLE`` (4096) element
positions, drawn once (seeded, so the same positions every write), and the sampled values of
the previous write. Memory is bounded by 4096 numbers per tensor whatever the model's size; a
tensor that changes shape gets a new sample (and no ratio at that write). One tracker belongs to
one writer / callback; ``add_layer_signals`` keeps one per model (weakly referenced).

``Sums`` adds squares and counts per node and rolls them up to the containers above (a
container's figure is over its whole subtree), so RMS and ratios of containers are exact.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from tensorboard_archviz.signals.catalog import UPDATE_SAMPLE

__all__ = ["UpdateTracker", "Sums", "ancestors"]


class UpdateTracker:
    """Fixed samples of every parameter tensor and their previous values (see the module)."""

    def __init__(self, sample: int = UPDATE_SAMPLE, seed: int = 0):
        self.sample = int(sample)
        self._rng = np.random.default_rng(seed)
        self._index: Dict[str, Tuple[int, Optional[np.ndarray]]] = {}
        self._previous: Dict[str, np.ndarray] = {}
        self._seen: Dict[str, np.ndarray] = {}
        self.writes = 0

    def indices(self, key: str, numel: int) -> Optional[np.ndarray]:
        """The sampled flat positions of tensor `key` (None: every element, it is small)."""
        known = self._index.get(key)
        if known is None or known[0] != numel:
            idx = None if numel <= self.sample else np.sort(
                self._rng.choice(numel, size=self.sample, replace=False)).astype(np.int64)
            known = (numel, idx)
            self._index[key] = known
            self._previous.pop(key, None)
        return known[1]

    def observe(self, key: str, values: np.ndarray) -> Optional[Tuple[float, float]]:
        """Record this write's sampled values of `key`: ``(Σ(ΔW)², ΣW²)`` against the previous
        write, or None at the first write of this tensor."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        self._seen[key] = values
        prev = self._previous.get(key)
        if prev is None or prev.shape != values.shape:
            return None
        delta = values - prev
        return float(np.dot(delta, delta)), float(np.dot(prev, prev))

    def finish(self) -> None:
        """End of a write: the values seen become the previous ones; tensors not seen are
        forgotten (bounded memory when parameters are replaced)."""
        self._previous, self._seen = self._seen, {}
        for key in [k for k in self._index if k not in self._previous]:
            del self._index[key]
        self.writes += 1


def ancestors(node_id: str, sep: str) -> List[str]:
    """The containers above `node_id` spelled by its id (``a.b.c`` -> ``a.b``, ``a``)."""
    parts = node_id.split(sep)
    return [sep.join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


class Sums:
    """Σx² and counts per node, then rolled up to the containers (see the module)."""

    def __init__(self) -> None:
        self.own: Dict[str, List[float]] = {}

    def add(self, node_id: str, sumsq: float, count: float) -> None:
        cur = self.own.setdefault(node_id, [0.0, 0.0])
        cur[0] += float(sumsq)
        cur[1] += float(count)

    def rolled(self, parents: Callable[[str], Iterable[str]]) -> Dict[str, Tuple[float, float]]:
        """Per node and per container above it: (Σx², count) over the subtree."""
        out: Dict[str, List[float]] = {}
        for nid, (s, n) in self.own.items():
            for target in [nid] + list(parents(nid)):
                cur = out.setdefault(target, [0.0, 0.0])
                cur[0] += s
                cur[1] += n
        return {k: (v[0], v[1]) for k, v in out.items()}

    def rms(self, parents: Callable[[str], Iterable[str]]) -> Dict[str, float]:
        """RMS per node and container (NaN / inf propagate)."""
        return {k: math.sqrt(s / n) if n else float("nan")
                for k, (s, n) in self.rolled(parents).items() if n}

    def ratio(self, other: "Sums", parents: Callable[[str], Iterable[str]]) -> Dict[str, float]:
        """sqrt(Σ self) / sqrt(Σ other) per node (self = ΔW², other = W²); nodes whose W is 0
        are left out (no ratio can be given)."""
        num, den = self.rolled(parents), other.rolled(parents)
        out = {}
        for k, (s, _) in num.items():
            d = den.get(k, (0.0, 0.0))[0]
            if d > 0 or math.isnan(d) or math.isnan(s):
                out[k] = math.sqrt(s) / math.sqrt(d) if d > 0 else float("nan")
        return out
