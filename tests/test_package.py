"""The package's public face: no framework import on import, the plugin entry point, the schema."""

import json
import subprocess
import sys

import pytest

from tensorboard_archviz import schema

FRAMEWORKS = ("tensorflow", "keras", "torch", "jax")


def test_importing_package_plugin_and_writing_imports_no_framework(tmp_path):
    code = """
import sys, json
import tensorboard_archviz
from tensorboard_archviz import plugin, schema, summary, metadata, diff, cli
from tensorboard_archviz.plugin import ArchVizPlugin
arch = schema.Architecture("keras", "3", schema.ModelInfo("m", "Sequential", 0, 0, 0),
                           nodes=[schema.Node("a", "a", "Dense")])
with summary.ArchVizWriter(sys.argv[1]) as w:
    w.add_architecture(arch, step=0)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r))))
""" % (FRAMEWORKS,)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
    assert list((tmp_path / "run").glob("events.out.tfevents.*.archviz"))


def test_entry_point_registers_the_plugin():
    from importlib.metadata import entry_points

    eps = [e for e in entry_points(group="tensorboard_plugins") if e.name == "archviz"]
    assert len(eps) == 1
    from tensorboard_archviz.plugin import ArchVizPlugin

    assert eps[0].load() is ArchVizPlugin


def test_lazy_public_names():
    import tensorboard_archviz

    assert sorted(tensorboard_archviz.__all__) == ["ArchVizCallback", "ArchVizLightningCallback",
                                                   "ArchVizTrainerCallback", "__version__",
                                                   "add_architecture", "add_filter_grids",
                                                   "add_layer_signals", "add_layer_values"]
    with pytest.raises(AttributeError):
        tensorboard_archviz.nope  # noqa: B018


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.update(schema_version="1"), "schema_version"),
    (lambda d: d.update(schema_version=schema.SCHEMA_VERSION + 1), "schema_version: 3 is newer"),
    (lambda d: d.update(framework="jax"), "framework"),
    (lambda d: d["model"].update(total_params=-1), "model.total_params"),
    (lambda d: d["nodes"][1].update(parent="ghost"), "nodes[1].parent"),
    (lambda d: d["nodes"][0]["params"].update(trainable="3"), "nodes[0].params.trainable"),
    (lambda d: d["nodes"][0].update(output_shapes=[[None, -3]]), "nodes[0].output_shapes[0][1]"),
    (lambda d: d["nodes"].append(dict(d["nodes"][0])), "nodes[2].id: duplicate"),
    (lambda d: d["edges"].append({"source": "a", "target": "zz"}), "edges[1].target"),
    (lambda d: d.update(inputs=["zz"]), "inputs[0]"),
])
def test_schema_errors_name_the_field(mutate, field):
    arch = schema.Architecture(
        "torch", "2.13.0", schema.ModelInfo("m", "Net", 10, 10, 0), inputs=["a"], outputs=["b"],
        nodes=[schema.Node("a", "a", "Linear", params={"trainable": 10, "non_trainable": 0}),
               schema.Node("b", "b", "ReLU", parent="a")],
        edges=[schema.Edge("a", "b", [1, 10])])
    data = json.loads(arch.to_json())
    assert schema.from_dict(json.loads(arch.to_json())) == arch
    mutate(data)
    with pytest.raises(schema.SchemaError) as e:
        schema.from_dict(data)
    assert field in str(e.value)


def test_schema_keeps_unknown_keys_and_migrates(monkeypatch):
    data = {"schema_version": 0, "framework": "keras", "framework_version": "3",
            "model": {"name": "m", "class_name": "Sequential", "future": 1},
            "nodes": [{"id": "a", "name": "a", "class_name": "Dense", "new_key": [1]}],
            "edges": []}
    with pytest.raises(schema.SchemaError, match="no migration from version 0"):
        schema.from_dict(data)
    monkeypatch.setitem(schema.MIGRATIONS, 0, lambda d: dict(d, inputs=["a"]))
    arch = schema.from_dict(data)
    assert arch.schema_version == schema.SCHEMA_VERSION and arch.inputs == ["a"]
    out = arch.to_dict()
    assert out["model"]["future"] == 1 and out["nodes"][0]["new_key"] == [1]
