"""signals.findings.find and the stored encoding, on hand-made series (no framework)."""

from __future__ import annotations

import json

import pytest

from tensorboard.compat.proto import summary_pb2, types_pb2

from tensorboard_archviz import metadata, summary
from tensorboard_archviz.signals import catalog
from tensorboard_archviz.signals.findings import THRESHOLDS, find, fmt
from tensorboard_archviz.signals.write import signals_doc, values_doc

ARCH = {"nodes": [{"id": "base", "parent": None, "class_name": "Functional"},
                  {"id": "base/conv1", "parent": "base", "class_name": "Conv2D"},
                  {"id": "base/conv2", "parent": "base", "class_name": "Conv2D"},
                  {"id": "relu", "parent": None, "class_name": "ReLU"},
                  {"id": "head", "parent": None, "class_name": "Dense"}]}


def kinds(found):
    return [f["kind"] for f in found]


def test_encoding_of_values():
    assert catalog.encode(0.123456789) == 0.123457
    assert catalog.encode(float("nan")) == "NaN"
    assert catalog.encode(float("inf")) == "Infinity" and catalog.encode(-1e400) == "-Infinity"
    assert catalog.encode(None) is None and catalog.encode(0) == 0.0
    assert [catalog.decode(v) for v in (1, "Infinity", None, "x", True)][1] == float("inf")
    doc = signals_doc({"weights.rms": {"a": float("nan")}}, framework="torch")
    pb = summary.signals_pb(doc)
    value = pb.value[0]
    assert value.tag == metadata.SIGNALS_TAG == "archviz/signals"
    assert json.loads(value.metadata.plugin_data.content) == {"kind": "signals", "version": 1}
    assert value.metadata.data_class == summary_pb2.DATA_CLASS_TENSOR
    assert value.tensor.dtype == types_pb2.DT_STRING and not value.tensor.tensor_shape.dim
    assert json.loads(value.tensor.string_val[0])["signals"] == {"weights.rms": {"a": "NaN"}}
    vpb = summary.values_pb("err", values_doc("err", {"x": 2}))
    assert vpb.value[0].tag == "archviz/values/err"
    assert json.loads(vpb.value[0].metadata.plugin_data.content)["name"] == "err"
    with pytest.raises(ValueError, match="unknown signal key"):
        signals_doc({"speed": {}}, framework="torch")


def test_catalog_describes_every_key_and_groups():
    for key, d in catalog.SIGNALS.items():
        assert set(d) == {"label", "unit", "scale", "description"} and d["scale"] in ("log",
                                                                                     "linear")
    assert catalog.describe("values.q")["label"] == "q (user values)"
    with pytest.raises(KeyError):
        catalog.describe("nope")
    assert catalog.groups_of(None) == catalog.DEFAULT_GROUPS
    assert catalog.groups_of("all") == catalog.ALL_GROUPS
    assert catalog.groups_of(["time.forward_ms", "weights"]) == ("time", "weights")


def test_vanishing_and_exploding_relative_to_the_head():
    steps = [0, 10]
    series = {"gradients.rms": {"base/conv1": [1e-3, 1e-9], "base/conv2": [1e-3, 5e-8],
                                "base": [1e-3, 4e-8], "head": [1e-2, 1e-3]}}
    found, t = find(ARCH, steps, series)
    assert t == THRESHOLDS and t["vanishing_ratio"] == 1e-4
    assert kinds(found) == ["vanishing"]
    f = found[0]
    assert f["nodes"] == ["base/conv1", "base/conv2"] and f["step"] == 10
    assert f["step_string"] == "10" and f["severity"] == "warning"
    assert f["text"] == ("gradients in `base/conv1`\u2026`base/conv2` (2 layers) are below "
                         "1e-4 \u00d7 the head's (`head`, 0.001) at step 10 (vanishing)")
    series = {"gradients.rms": {"base/conv1": [2e3], "head": [0.1]}}
    found, _ = find(ARCH, [3], series)
    assert kinds(found) == ["exploding"] and found[0]["nodes"] == ["base/conv1"]


def test_model_order_without_an_architecture_comes_from_the_series():
    series = {"gradients.rms": {"a": [1e-12], "b": [1e-11], "c": [1.0]}}
    found, _ = find(None, [0], series)
    assert found[0]["nodes"] == ["a", "b"]


def test_frozen_container_is_named_once():
    series = {"updates.ratio": {"base/conv1": [None, 0.0, 0.0], "base/conv2": [None, 0.0, 0.0],
                                "base": [None, 0.0, 0.0], "head": [None, 2e-3, 3e-2]}}
    found, _ = find(ARCH, [0, 1, 2], series)
    assert kinds(found) == ["update_high", "frozen"]
    assert found[0]["text"] == ("`head` update ratio 0.03 at step 2, far above the usual "
                                "0.001 per step (learning rate too high?)")
    assert found[1]["nodes"] == ["base"]
    assert found[1]["text"] == ("`base` did not change between steps 0 and 2 "
                                "(frozen or zero learning rate)")


def test_update_ratio_written_every_k_steps_is_compared_per_step():
    """A ratio written every 100 steps spans 100 updates: healthy per-step ratios of 2e-3 add
    up to far more than the 1e-2 limit. Only ratio / k (a lower bound on the mean per-step
    ratio) is compared, from the writer's update_steps, else the gap between written steps."""
    series = {"updates.ratio": {"relu": [None, 0.73, 0.2, 0.1], "head": [None, 0.21, 0.3, 0.9]}}
    steps = [0, 100, 200, 300]
    assert find(ARCH, steps, series)[0] == []                          # gaps of 100 steps
    assert find(ARCH, steps, series, update_steps=[None, 100, 100, 100])[0] == []
    found, _ = find(ARCH, steps, series, update_steps=[None, 100, 100, 20])
    assert [(f["kind"], f["nodes"], f["step"]) for f in found] == [("update_high", ["head"], 300)]
    assert found[0]["text"] == ("`head` update ratio 0.9 over the 20 training steps up to step "
                                "300: at least 0.045 per step on average, far above the usual "
                                "0.001 (learning rate too high?)")
    # steps that are epochs: the writer's count of training batches decides, not the step gap
    found, _ = find(ARCH, [0, 1, 2, 3], series, update_steps=[None, 100, 100, 100])
    assert found == []
    found, _ = find(ARCH, [0, 1, 2, 3], series)                        # unknown: the gap, 1
    assert [f["nodes"] for f in found if f["kind"] == "update_high"] == [["head"], ["relu"]]
    # a non-finite ratio is still named by `nonfinite`, never divided
    found, _ = find(ARCH, steps, {"updates.ratio": {"head": [None, "NaN", 0.1, 0.1]}},
                    update_steps=[None, 100, 100, 100])
    assert kinds(found) == ["nonfinite"]


def test_frozen_then_unfrozen_is_one_run():
    series = {"updates.ratio": {"base": [None, 0.0, 0.0, 2e-3, 1e-3], "head": [None] + [1e-3] * 4},
              "gradients.rms": {"base": [0.1] * 5, "head": [0.1] * 5}}
    found, _ = find(ARCH, [0, 1, 2, 3, 4], series)
    assert [(f["kind"], f["nodes"], f["step"]) for f in found] == [("frozen", ["base"], 2)]
    assert found[0]["text"] == ("`base` did not change between steps 0 and 2 "
                                "(frozen or zero learning rate)")


def test_dead_saturated_slowest_and_nonfinite():
    series = {"activations.zero_fraction": {"relu": [0.5, 0.92], "head": [0.0, 0.0]},
              "activations.saturated_fraction": {"head": [0.2, 0.95]},
              "time.forward_ms": {"base/conv1": [1.0, 3.0], "base": [4.0, 4.5],
                                  "head": [0.5, 0.5]},
              "gradients.rms": {"base/conv1": [0.1, "NaN"], "base/conv2": [0.1, "Infinity"],
                                "head": [0.1, 0.1]}}
    found, _ = find(ARCH, [0, 5], series)
    by = {f["kind"]: f for f in found}
    assert by["dead"]["text"] == ("`relu`: 92 % of units are zero on every example of the "
                                  "example batch (dead ReLU)")
    assert by["saturated"]["nodes"] == ["head"]
    assert by["slowest"]["nodes"] == ["base/conv1"] and by["slowest"]["severity"] == "info"
    assert by["nonfinite"]["nodes"] == ["base/conv1", "base/conv2"]
    assert by["nonfinite"]["step"] == 5
    assert by["nonfinite"]["text"].startswith("Gradient RMS is NaN or infinite in ")


def test_nothing_to_find():
    assert find(None, [], {}) == ([], THRESHOLDS)
    assert find(None, [0], {"weights.rms": {"a": [None]}})[0] == []


def test_fmt():
    assert [fmt(v) for v in (0.03, 3.1e-5, 1e-4, 12345.0, 0)] == ["0.03", "3.1e-5", "1e-4",
                                                                 "1.2e4", "0"]
