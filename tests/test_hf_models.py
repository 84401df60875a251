"""Hugging Face transformers models (tiny random-weight configs, nothing downloaded) through
``add_architecture`` and a real TensorBoard: decoder-only (Llama, GPT-2), encoder (BERT with a
padded attention mask), encoder-decoder (T5 with ``decoder_input_ids``) and vision (ViT).

Inputs are the usual dict of keyword tensors and outputs ``ModelOutput``s. Every architecture is
read back through the plugin's route of one TensorBoard shared by the module; the T5 run is also
opened in Chromium's Arch Viz tab.
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from conftest import open_archviz, run_tensorboard, wait_for_run  # noqa: E402
import hf_helpers as H  # noqa: E402

FAMILIES = ("llama", "gpt2", "bert", "t5", "vit")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(TensorBoard URL, {family: model}) with each family written as run `family`."""
    from torch.utils.tensorboard import SummaryWriter

    from tensorboard_archviz import add_architecture

    logdir = tmp_path_factory.mktemp("hf_logs")
    models = {}
    for family, (model, inputs) in H.example_inputs().items():
        writer = SummaryWriter(str(logdir / family))
        add_architecture(writer, model, inputs, global_step=0)
        writer.close()
        models[family] = model
    with run_tensorboard(logdir) as url:
        for family in FAMILIES:
            wait_for_run(url, family)
        yield url, models


@pytest.fixture(scope="module")
def archs(served):
    url, _ = served
    return {family: H.fetch_architecture(url, family) for family in FAMILIES}


def preds(arch, node_id):
    return {s for s, t in H.edge_set(arch) if t == node_id}


def residual_add(arch, skip, branch):
    """The one functional ``add`` node fed by both `skip` and `branch`."""
    adds = [n["id"] for n in arch["nodes"]
            if n["class_name"] == "add" and {skip, branch} <= preds(arch, n["id"])]
    assert len(adds) == 1, (skip, branch, adds)
    return adds[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_params_exact_and_written_by_hooks(served, archs, family):
    _, models = served
    arch = archs[family]
    model = models[family]
    expected = H.unique_params(model)
    assert arch["model"]["total_params"] == expected
    assert arch["model"]["trainable_params"] == expected
    assert arch["model"]["class_name"] == type(model).__name__
    # forwards with **kwargs cannot be traced by torch.fx: the hooks path records the data flow
    assert arch["extraction"]["method"] == "hooks"
    nodes = H.nodes_by_id(arch)
    # every module of named_modules() is a node (the root names the model)
    assert {name for name, _ in model.named_modules() if name} <= set(nodes)


def test_llama_shapes_gqa_residuals(archs):
    arch = archs["llama"]
    n = H.nodes_by_id(arch)
    assert arch["inputs"] == ["input_ids"] and arch["outputs"] == ["lm_head"]
    assert [o["name"] for o in arch["model"]["output_names"]] == ["logits"]
    assert n["model.layers.0.self_attn.q_proj"]["output_shapes"] == [[1, 8, 32]]
    assert n["model.layers.0.self_attn.k_proj"]["output_shapes"] == [[1, 8, 16]]  # 2 KV heads
    assert n["lm_head"]["output_shapes"] == [[1, 8, 100]]
    attn = n["model.layers.0.self_attn"]["config"]
    assert (attn["num_heads"], attn["num_key_value_heads"], attn["head_dim"]) == (4, 2, 8)
    # per-example MACs: q/o 8*32*32, k/v 8*32*16, QK^T and AV 4*8*8*8 each; gate/up/down 8*32*64
    assert n["model.layers.0.self_attn"]["macs"] == 2 * 8192 + 2 * 4096 + 2 * 2048
    assert n["model.layers.0"]["macs"] == 28672 + 3 * 16384
    assert n["lm_head"]["macs"] == 8 * 32 * 100
    assert arch["model"]["macs"] == 2 * 77824 + 25600 and arch["model"]["macs_complete"]
    assert H.node_total(n["model.layers.0"]) == 9280 and H.node_total(n["lm_head"]) == 3200
    assert ("input_ids", "model.embed_tokens") in H.edge_set(arch)
    # pre-norm residuals: embeddings + attention -> add; that add + MLP -> the next add
    first = residual_add(arch, "model.embed_tokens", "model.layers.0.self_attn.o_proj")
    assert (first, "model.layers.0.post_attention_layernorm") in H.edge_set(arch)
    second = residual_add(arch, first, "model.layers.0.mlp.down_proj")
    assert (second, "model.layers.1.input_layernorm") in H.edge_set(arch)
    # the rotary embedding feeds the attention of both layers
    assert H.reaches(arch, "model.rotary_emb", "model.layers.1.self_attn.o_proj")


def test_gpt2_tied_embeddings_counted_once(served, archs):
    arch = archs["gpt2"]
    n = H.nodes_by_id(arch)
    model = served[1]["gpt2"]
    assert model.lm_head.weight is model.transformer.wte.weight
    assert H.node_total(n["transformer.wte"]) == H.node_total(n["lm_head"]) == 3200
    leaves = sum(H.node_total(v) for v in n.values() if not v.get("is_container"))
    assert leaves == arch["model"]["total_params"] + 3200  # the tied matrix shown on both nodes
    assert n["transformer.h.0.attn.c_attn"]["output_shapes"] == [[1, 8, 96]]
    add = residual_add(arch, "transformer.drop", "transformer.h.0.attn.resid_dropout")
    assert (add, "transformer.h.0.ln_2") in H.edge_set(arch)
    residual_add(arch, add, "transformer.h.0.mlp.dropout")


def test_bert_mask_reaches_every_attention(archs):
    arch = archs["bert"]
    n = H.nodes_by_id(arch)
    assert arch["inputs"] == ["input_ids", "attention_mask"]
    assert [o["name"] for o in arch["model"]["output_names"]] == ["last_hidden_state",
                                                                   "pooler_output"]
    sdpa = [i for i, v in n.items() if v["class_name"] == "scaled_dot_product_attention"]
    assert len(sdpa) == 2
    assert all(H.reaches(arch, "attention_mask", s) for s in sdpa)
    assert n["pooler.dense"]["output_shapes"] == [[1, 32]]
    assert n["encoder.layer.0.intermediate.dense"]["output_shapes"] == [[1, 8, 64]]
    add = residual_add(arch, "embeddings.dropout", "encoder.layer.0.attention.output.dropout")
    assert (add, "encoder.layer.0.attention.output.LayerNorm") in H.edge_set(arch)


def test_t5_encoder_output_feeds_every_cross_attention(archs):
    arch = archs["t5"]
    n = H.nodes_by_id(arch)
    assert arch["inputs"] == ["input_ids", "decoder_input_ids"]
    names = {o["name"]: o["shape"] for o in arch["model"]["output_names"]}
    assert names == {"logits": [1, 5, 100], "encoder_last_hidden_state": [1, 8, 32]}
    for i in (0, 1):
        cross = "decoder.block.%d.layer.1.EncDecAttention" % i
        # keys and values come from the encoder's output (its dropout module, called twice);
        # the queries from the decoder's own stream
        assert preds(arch, cross + ".k") == preds(arch, cross + ".v") == {"encoder.dropout"}
        assert preds(arch, cross + ".q") == {"decoder.block.%d.layer.1.layer_norm" % i}
        assert n[cross + ".k"]["output_shapes"] == [[1, 8, 32]]  # encoder length 8
        assert n[cross + ".q"]["output_shapes"] == [[1, 5, 32]]  # decoder length 5
        assert H.reaches(arch, "encoder.final_layer_norm", cross + ".k")
        cfg = n[cross]["config"]
        assert (cfg["num_heads"], cfg["head_dim"]) == (4, 8)
        # q/o over 5 decoder positions, k/v over 8 encoder positions; QK^T and AV 4*5*8*8 each
        assert n[cross]["macs"] == 2 * 5 * 32 * 32 + 2 * 8 * 32 * 32 + 2 * 1280
    assert ("decoder_input_ids", "decoder.embed_tokens") in H.edge_set(arch)
    assert not H.reaches(arch, "decoder_input_ids", "encoder.final_layer_norm")
    # shared, encoder/decoder embeddings and lm_head are one tied matrix, counted once
    assert {H.node_total(n[k]) for k in ("shared", "encoder.embed_tokens",
                                         "decoder.embed_tokens", "lm_head")} == {3200}
    assert arch["model"]["total_params"] == 44800


def test_vit_patches_and_class_token(archs):
    arch = archs["vit"]
    n = H.nodes_by_id(arch)
    assert arch["inputs"] == ["pixel_values"] and arch["outputs"] == ["classifier"]
    assert n["vit.embeddings.patch_embeddings.projection"]["output_shapes"] == [[1, 32, 4, 4]]
    # 16 patches + the class token
    assert n["vit.layers.0.layernorm_before"]["output_shapes"] == [[1, 17, 32]]
    assert n["classifier"]["output_shapes"] == [[1, 10]]
    assert H.reaches(arch, "pixel_values", "classifier")


# the first module row of each family's table (rows are virtualised: only those near the top are
# in the DOM)
FAMILY_ROW = {"llama": "model", "gpt2": "transformer", "bert": "embeddings", "t5": "shared",
              "vit": "vit"}


def test_every_family_in_the_arch_viz_tab(served, page):
    url, models = served
    frame = open_archviz(page, url)
    frame.wait_for_selector("select[data-picker=run]")
    for family in FAMILIES:
        frame.select_option("select[data-picker=run]", family)
        frame.wait_for_selector('.av-table tr.row[data-id="%s"]' % FAMILY_ROW[family])
        total = "{:,}".format(H.unique_params(models[family]))
        frame.wait_for_function("t => document.querySelector('[data-total=total]')"
                                "?.textContent.trim() === t", arg=total)
        assert type(models[family]).__name__ in frame.inner_text(".av-totals")
        if family == "t5":  # the shared embedding's row shows the tied matrix
            row = frame.inner_text('.av-table tr.row[data-id="shared"]')
            assert "Embedding" in row and "3,200" in row


META_BUILDERS = {"llama": H.llama, "gpt2": H.gpt2, "bert": H.bert, "t5": H.t5, "vit": H.vit}


def comparable(arch: dict):
    """Nodes (id, class, shapes, params, MACs) and edges of an architecture dict."""
    nodes = [(n["id"], n["class_name"], n["output_shapes"], n["params"], n.get("macs"))
             for n in arch["nodes"]]
    return nodes, sorted(H.edge_set(arch)), arch["model"]["total_params"]


@pytest.mark.parametrize("family", FAMILIES)
def test_meta_device_gives_the_same_document(family):
    """Built under torch.device("meta") (no weights allocated), inputs on meta: the same nodes,
    shapes, params, MACs and edges as with real weights. BERT is given no attention mask here:
    transformers decides whether to skip a mask with ``mask.all().item()``, a value the meta
    device does not have (the extraction is then partial, naming ``Tensor.item()``)."""
    import torch

    from tensorboard_archviz.extract.torch import extract_torch

    model, inputs = H.example_inputs()[family]
    if family == "bert":
        inputs = {"input_ids": inputs["input_ids"]}
    with torch.device("meta"):
        meta_model = META_BUILDERS[family]()
    meta_inputs = {k: v.to("meta") for k, v in inputs.items()}
    meta = extract_torch(meta_model, meta_inputs).to_dict()
    real = extract_torch(model, inputs).to_dict()
    assert not meta["extraction"].get("partial")
    assert comparable(meta) == comparable(real)
    assert meta["model"]["macs"] == real["model"]["macs"] > 0


def test_missing_input_is_named():
    """T5 without decoder_input_ids: the error says which argument was not given."""
    import torch

    from tensorboard_archviz.extract.torch import ExtractionError, extract_torch

    model = H.t5()
    with pytest.raises(ExtractionError) as err:
        extract_torch(model, {"input_ids": H.token_ids()})
    assert str(err.value).endswith("; forward also takes decoder_input_ids (not given)")
    assert torch.is_grad_enabled()
