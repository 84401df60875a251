"""The reader shared by the plugin and the CLI, in process over real event files (written with the
package's writer, read with its TF-free DataProvider): the timeline in one pass, bounded reads,
the byte-bounded cache, deep JSON, int64 steps."""

import json

import numpy as np
import pytest
from tensorboard import context as tb_context
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util

from tensorboard_archviz import diff, metadata, reader, schema, summary, util
from tensorboard_archviz.event_files import LocalEventFilesProvider

CTX = tb_context.RequestContext()


def arch(units=10, ids=("flatten", "dense"), pad=""):
    first, second = ids
    return schema.Architecture(
        framework="keras", framework_version="3",
        model=schema.ModelInfo("m", "Sequential", total_params=4 * units + units,
                               trainable_params=4 * units + units),
        inputs=[first], outputs=[second],
        nodes=[schema.Node(first, first, "Flatten", output_shapes=[[None, 4]]),
               schema.Node(second, second, "Dense", output_shapes=[[None, units]],
                           params={"trainable": 4 * units + units, "non_trainable": 0},
                           config={"units": units, "pad": pad})],
        edges=[schema.Edge(first, second)])


def raw_architecture(text):
    s = summary_pb2.Summary()
    s.value.add(tag=metadata.ARCHITECTURE_TAG, metadata=metadata.create_architecture_metadata(),
                tensor=tensor_util.make_tensor_proto(np.array(text.encode(), dtype=object)))
    return s


def deep_json(depth):
    doc = arch().to_dict()
    text = json.dumps(doc)
    marker = '"pad": ""'
    return text.replace(marker, '"pad": ' + '{"x": ' * depth + '1' + '}' * depth)


class CountingProvider:
    """A real provider that records what every read_tensors call asked for and returned."""

    def __init__(self, inner):
        self.inner = inner
        self.reads = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read_tensors(self, ctx=None, **kw):
        out = self.inner.read_tensors(ctx, **kw)
        datums = [d for tags in out.values() for ds in tags.values() for d in ds]
        self.reads.append((kw["downsample"], sum(len(d.numpy.item()) for d in datums)))
        return out


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader")
    with summary.ArchVizWriter(str(root / "tl")) as w:
        w.add_architecture(arch(10), step=0)
        w.add_architecture(arch(10), step=1)                       # the same bytes
        w.add_architecture(arch(32), step=2)                       # units changed
        w.add_architecture(arch(32, ids=("flatten_1", "dense_7")), step=3)   # renamed only
        w.add_summary(raw_architecture('{"schema_version": 2, "nodes": ['), step=4)
        w.add_architecture(arch(16, ids=("flatten_1", "dense_7")), step=5)
    with summary.ArchVizWriter(str(root / "steps")) as w:
        for step in (-1, 0, 2 ** 60 + 1):
            w.add_architecture(arch(3 + (step % 7)), step=step)
    with summary.ArchVizWriter(str(root / "big")) as w:
        for step in range(10):
            w.add_architecture(arch(5 + step, pad="x" * 20_000), step=step)
    with summary.ArchVizWriter(str(root / "deep")) as w:
        w.add_summary(raw_architecture(deep_json(500)), step=0)
        w.add_summary(raw_architecture(deep_json(10_000)), step=1)
    return root


def test_timeline_one_pass(logdir, monkeypatch):
    calls = []
    real = diff.diff_architectures
    monkeypatch.setattr(diff, "diff_architectures", lambda a, b: calls.append(1) or real(a, b))
    provider = CountingProvider(LocalEventFilesProvider(str(logdir)))
    tl = reader.ArchitectureReader(provider).timeline(CTX, "", "tl")
    entries = tl["entries"]
    assert [e["step"] for e in entries] == [0, 1, 2, 3, 4, 5]
    assert entries[0]["first"] is True and entries[0]["summary"].startswith(
        "first architecture written: m (Sequential), 2 layers, 50 params")
    assert entries[1]["identical"] is True and entries[1]["summary"] == "no changes"
    assert entries[2]["identical"] is False and entries[2]["counts"]["changed"] == 1
    assert entries[2]["details"] == [
        "trainable params 50 \u2192 160", "total params 50 \u2192 160 (+110)",
        "dense: output_shapes (None, 10) \u2192 (None, 32); params.trainable 50 \u2192 160; "
        "config.units 10 \u2192 32"]
    assert "trainable params 50 \u2192 160" in entries[2]["highlights"]
    assert entries[3]["identical"] is False and entries[3]["summary"] == "2 renamed"
    assert entries[3]["details"] == ["renamed: flatten \u2192 flatten_1, dense \u2192 dense_7"]
    assert "not valid JSON" in entries[4]["error"] and "summary" not in entries[4]
    assert entries[5]["previous_step"] == 3 and entries[5]["summary"].startswith("1 changed")
    # one read of the series after the listing; step 1 (same bytes) and the broken step: no diff
    assert len(calls) == 3
    assert [d for d, _ in provider.reads] == [1, 1000, 1000]


def test_bounded_reads_list_what_fits(logdir):
    provider = CountingProvider(LocalEventFilesProvider(str(logdir)))
    size = len(summary.architecture_json(arch(5, pad="x" * 20_000)))
    rd = reader.ArchitectureReader(provider, read_budget=3 * size + 100)
    index = rd.index(CTX, "", "big")
    assert index.steps[-1] == 9 and len(index.steps) == 3
    assert index.errors[0].startswith("this run's data is too large to read at once: ")
    assert max(n for _, n in provider.reads) <= rd.read_budget
    assert rd.load(CTX, "", "big", None)[0] == 9
    assert provider.reads[-1][0] == 1  # the latest alone
    assert rd.load(CTX, "", "big", index.steps[0])[1].model.total_params == 5 * (
        5 + index.steps[0])
    with pytest.raises(reader.ReadError) as e:
        rd.load(CTX, "", "big", 12)
    assert e.value.code == 404 and "available steps" in e.value.message
    assert max(n for _, n in provider.reads) <= rd.read_budget
    entries = rd.timeline(CTX, "", "big")["entries"]
    assert [e["step"] for e in entries] == index.steps


def test_cache_is_bounded_by_bytes(logdir):
    rd = reader.ArchitectureReader(LocalEventFilesProvider(str(logdir)), cache_bytes=3_000_000)
    for step in range(10):
        rd.load(CTX, "", "big", step)
        assert rd.cache.used <= 3_000_000
    assert 0 < rd.cache.used
    tiny = reader.ArchitectureReader(LocalEventFilesProvider(str(logdir)), cache_bytes=1000)
    tiny.load(CTX, "", "big", 3)
    assert tiny.cache.used == 0  # larger than the whole cache: not kept


def test_int64_steps_exact(logdir):
    rd = reader.ArchitectureReader(LocalEventFilesProvider(str(logdir)))
    assert rd.runs(CTX, "")["steps"].steps == [-1, 0, 2 ** 60 + 1]
    big = reader.parse_step("1152921504606846977")
    assert big == 2 ** 60 + 1 and reader.step_string(big) == "1152921504606846977"
    assert rd.load(CTX, "", "steps", reader.parse_step("-1"))[0] == -1
    assert rd.load(CTX, "", "steps", big)[1].model.total_params == 5 * (3 + big % 7)
    for bad in ("1e3", "0x10", "+3", "", "--3", "-", "9223372036854775808", "١٢", "3\n4"):
        with pytest.raises(reader.ReadError) as e:
            reader.parse_step(bad)
        assert e.value.code == 400


@pytest.mark.parametrize("step,depth", [(0, 500), (1, 10_000)])
def test_deep_json_is_a_422_naming_the_field(logdir, step, depth):
    rd = reader.ArchitectureReader(LocalEventFilesProvider(str(logdir)))
    with pytest.raises(reader.ReadError) as e:
        rd.load(CTX, "", "deep", step)
    assert e.value.code == 422
    assert "nodes[1].config.pad.x.x" in e.value.message
    assert "JSON depth limit of %d levels" % util.MAX_JSON_DEPTH in e.value.message


@pytest.mark.parametrize("depth", [500, 10_000])
def test_writer_refuses_deep_json(tmp_path, depth):
    doc = json.loads(deep_json(200))  # json.loads of 10,000 levels itself fails: build it
    inner = doc["nodes"][1]["config"]
    for _ in range(depth):
        inner = {"x": inner}
    doc["nodes"][1]["config"] = {"pad": inner}
    with pytest.raises(schema.SchemaError) as e:
        summary.architecture_pb(doc)
    assert "nodes[1].config.pad.x" in str(e.value) and "depth limit of 100" in str(e.value)
    a = arch()
    a.nodes[1].config = {"pad": inner}
    with pytest.raises(ValueError, match="depth limit"):
        with summary.ArchVizWriter(str(tmp_path)) as w:
            w.add_architecture(a, step=0)


def test_plugin_data_version_is_read():
    """metadata.PROTO_VERSION is checked: equal is silent, newer is said with both versions,
    unparseable content is said (issue 22 item 6)."""
    from tensorboard.data import provider

    from tensorboard_archviz import metadata

    def series(content):
        return provider.TensorTimeSeries(max_step=0, max_wall_time=0.0, plugin_content=content,
                                         description="", display_name="")

    current = metadata.create_architecture_metadata().plugin_data.content
    assert reader.version_note(series(current), "r", "archviz/architecture") is None
    newer = json.dumps({"version": metadata.PROTO_VERSION + 2, "kind": "signals"}).encode()
    assert reader.version_note(series(newer), "r", "archviz/signals") == (
        "run 'r' tag 'archviz/signals' was written by a newer tensorboard-archviz (plugin data "
        "version %d; this plugin reads version %d): update tensorboard-archviz; what this "
        "version can read is shown" % (metadata.PROTO_VERSION + 2, metadata.PROTO_VERSION))
    assert reader.version_note(series(b"\xff{"), "r", "t").startswith(
        "run 'r' tag 't': ValueError: archviz plugin metadata is not JSON")
    assert reader.version_note(series(b'{"version": 1, "kind": "weird"}'), "r", "t") == (
        "run 'r' tag 't': ValueError: archviz plugin metadata has no known kind: "
        "{'version': 1, 'kind': 'weird'}")
