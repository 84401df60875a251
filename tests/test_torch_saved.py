"""extract/torch_saved.py: a torch.export program (.pt2) and a TorchScript archive, saved and loaded
back, give the architecture extract_torch gives for the original nn.Module — node for node (ids,
classes, parents, shapes, dtypes, params, MACs, calls), edge for edge — except the fields the
module docstring lists (module configs of a .pt2 are rebuilt from ATen arguments, functional
ops' configs hold ATen arguments, the extraction method)."""

import pytest
import torch

import torch_models as tm
from tensorboard_archviz.extract.torch import ExtractionError, extract_torch
from tensorboard_archviz.extract.torch_saved import extract_exported_program, extract_torchscript

MODELS = {
    "lenet": (tm.lenet, (1, 1, 28, 28)),
    "small_resnet": (tm.SmallResNet, (2, 1, 28, 28)),      # residual add, BN buffers, container
    "torchinfo_cnn": (tm.TorchinfoCNN, (16, 1, 28, 28)),  # functional relu/pool/view/dropout
    "called_twice": (tm.CalledTwice, (3, 8)),             # one module, two calls
    "dict_output": (tm.DictOutput, (2, 16)),              # dict outputs
    "side_effects": (tm.SideEffects, (2, 3, 8, 8)),       # frozen layer (non-trainable params)
}
SCRIPT_FLAVOURS = ("script", "trace")


def _model(name):
    torch.manual_seed(0)
    ctor, shape = MODELS[name]
    return ctor().eval(), torch.randn(*shape)


def _without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


def assert_same_as_extract_torch(ref, got, module_config):
    """`module_config`: "equal", "subset" (every key present equals the reference)."""
    r, g = ref.to_dict(), got.to_dict()
    assert g["framework"] == "torch" and g["framework_version"] == r["framework_version"]
    assert g["model"] == r["model"]                      # totals, MACs, batch, output names
    assert g["inputs"] == r["inputs"] and g["outputs"] == r["outputs"]
    assert g["edges"] == r["edges"]                      # same order, same shapes
    assert [n["id"] for n in g["nodes"]] == [n["id"] for n in r["nodes"]]
    for rn, gn in zip(r["nodes"], g["nodes"]):
        assert _without(gn, "config", "config_source") == _without(rn, "config"), rn["id"]
        if rn.get("is_function"):
            continue  # ATen arguments instead of the Python call's
        if module_config == "equal":
            assert gn["config"] == rn["config"], rn["id"]
        else:
            for k, v in gn["config"].items():
                assert rn["config"].get(k) == v, (rn["id"], k)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_program_matches_extract_torch(name, tmp_path):
    model, x = _model(name)
    ref = extract_torch(model, x)
    path = str(tmp_path / (name + ".pt2"))
    torch.export.save(torch.export.export(model, (x,)), path)
    got = extract_exported_program(torch.export.load(path))   # its own example input
    assert got.extraction["method"] == "torch.export"
    assert_same_as_extract_torch(ref, got, "subset")
    if name == "lenet":  # the rebuilt configs of the common layers
        conv = got.node("0").config
        assert conv == {"in_channels": 1, "out_channels": 20, "kernel_size": [5, 5],
                        "transposed": False, "output_padding": [0, 0], "stride": [1, 1],
                        "padding": [2, 2], "dilation": [1, 1], "groups": 1, "bias": True}
        assert got.node("7").config == {"in_features": 2450, "out_features": 500, "bias": True}
        assert got.node("2").config == {"kernel_size": 2, "stride": 2, "padding": 0}


@pytest.mark.parametrize("flavour", SCRIPT_FLAVOURS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchscript_matches_extract_torch(name, flavour, tmp_path):
    model, x = _model(name)
    ref = extract_torch(model, x)
    scripted = torch.jit.script(model) if flavour == "script" else \
        torch.jit.trace(model, x, strict=False)
    path = str(tmp_path / ("%s_%s.pt" % (name, flavour)))
    torch.jit.save(scripted, path)
    loaded = torch.jit.load(path)
    was_training = [m.training for m in loaded.modules()]
    got = extract_torchscript(loaded, x)
    assert got.extraction["method"] == "torchscript"
    # a scripted module keeps its configuration; a traced one only whether it has a bias
    assert_same_as_extract_torch(ref, got, "equal" if flavour == "script" else "subset")
    if flavour == "trace" and name == "lenet":
        assert got.node("0").config == {"bias": True} and got.node("1").config == {}
    assert [m.training for m in loaded.modules()] == was_training  # no side effect


def test_side_effects_params_and_buffers(tmp_path):
    """The frozen Linear is non-trainable; BatchNorm's running statistics are buffers."""
    model, x = _model("side_effects")
    path = str(tmp_path / "side.pt2")
    torch.export.save(torch.export.export(model, (x,)), path)
    got = extract_exported_program(torch.export.load(path))
    assert got.node("frozen").params == {"trainable": 0, "non_trainable": 36}
    assert got.model.non_trainable_params == 36 and got.model.total_params == 276  # 224 + 16 + 36
    assert [b["name"] for b in got.node("bn").buffers] == [
        "running_mean", "running_var", "num_batches_tracked"]


def test_module_list_and_multihead_attention_in_pt2(tmp_path):
    """What a .pt2 cannot know: the class of modules that never ran (a ModuleList is guessed from
    its numbered children; MultiheadAttention's out_proj stays "Module"), and a tensor passed
    three times to one call (q, k, v) is one input there."""
    torch.manual_seed(0)
    model, x = tm.transformer_encoder().eval(), torch.randn(5, 2, 32)
    ref = extract_torch(model, x)
    path = str(tmp_path / "enc.pt2")
    torch.export.save(torch.export.export(model, (x,)), path)
    got = extract_exported_program(torch.export.load(path))
    assert got.node_ids() == ref.node_ids() and got.edges == ref.edges
    assert got.model.total_params == ref.model.total_params == 17_088  # 2 x 8,544
    assert got.node("layers").class_name == "ModuleList"
    assert got.node("layers").class_known is False
    attn = got.node("layers.0.self_attn.out_proj")
    assert attn.class_name == "Module" and attn.class_known is False
    assert ref.node("layers.0.self_attn").input_shapes == [[5, 2, 32]] * 3
    assert got.node("layers.0.self_attn").input_shapes == [[5, 2, 32]]


@pytest.mark.parametrize("flavour", SCRIPT_FLAVOURS)
def test_torchscript_transformer_with_control_flow(flavour, tmp_path):
    """A scripted nn.TransformerEncoder runs its layers inside `if`s (fast-path checks): the
    graph is specialised to the branches the input takes, so every layer is found."""
    torch.manual_seed(0)
    model, x = tm.transformer_encoder().eval(), torch.randn(5, 2, 32)
    ref = extract_torch(model, x)
    path = str(tmp_path / "enc.pt")
    scripted = torch.jit.script(model) if flavour == "script" else \
        torch.jit.trace(model, x, strict=False)
    torch.jit.save(scripted, path)
    got = extract_torchscript(torch.jit.load(path), x)
    assert got.node_ids() == ref.node_ids() and got.edges == ref.edges
    assert got.to_dict()["model"] == ref.to_dict()["model"]
    for r, g in zip(ref.nodes, got.nodes):
        if r.class_name != "MultiheadAttention":  # q, k, v: one tensor, one input here
            assert (g.input_shapes, g.output_shapes, g.params, g.macs) == \
                (r.input_shapes, r.output_shapes, r.params, r.macs), r.id


def test_inputs_that_do_not_fit(tmp_path):
    model, x = _model("small_resnet")
    path = str(tmp_path / "r.pt2")
    torch.export.save(torch.export.export(model, (x,)), path)
    with pytest.raises(ExtractionError, match=r"Guard failed: x.size\(\)\[0\] == 2"):
        extract_exported_program(torch.export.load(path), torch.randn(3, 1, 28, 28))
    ts = torch.jit.script(model)
    with pytest.raises(ExtractionError, match="expected input.* to have 1 channels, but got 3"):
        extract_torchscript(ts, torch.randn(2, 3, 28, 28))
    with pytest.raises(ExtractionError, match="expects a torch.jit.ScriptModule"):
        extract_torchscript(model, x)
