"""Models on the meta device (no weights allocated): the same document as for real weights; an op
without a meta kernel gives a partial graph, never an error. Timing: bench/bench_meta_device.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import torch_models as tm
from tensorboard_archviz import schema, summary
from tensorboard_archviz.extract.torch import extract_torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _meta(build):
    torch.manual_seed(0)
    with torch.device("meta"):
        return build()


def test_meta_llama_gives_the_real_models_document():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    real = tm.hf_llama()
    meta = _meta(tm.hf_llama)
    ids = torch.randint(0, 256, (2, 16))
    a = extract_torch(real, {"input_ids": ids})
    b = extract_torch(meta, {"input_ids": ids.to("meta")})
    assert b.to_dict() == a.to_dict()  # shapes, dtypes, params, MACs, memory, edges
    assert b.model.total_params == sum(p.numel() for p in real.parameters())
    assert b.model.macs > 0 and b.model.macs_complete is True
    assert all(p.is_meta for p in meta.parameters())  # nothing materialised
    attn = b.node("model.layers.0.self_attn").config  # constructor arguments from the config
    assert (attn["num_heads"], attn["num_key_value_heads"], attn["head_dim"]) == (4, 2, 16)
    assert b.node("model.layers.0.mlp").config["intermediate_size"] == 172
    edges = b.edge_pairs()  # the residual add around self-attention
    assert ("model.embed_tokens", "add_2") in edges
    assert ("model.layers.0.self_attn.o_proj", "add_2") in edges


@pytest.mark.parametrize("method", ["auto", "fx"])
def test_meta_resnet_fx_path_and_side_effects(method):
    real = tm.ResNet((1, 1, 1, 1), num_classes=7)
    meta = _meta(lambda: tm.ResNet((1, 1, 1, 1), num_classes=7))
    meta.train()
    buffers = {k: b for k, b in meta.named_buffers()}
    x = torch.randn(2, 3, 32, 32)
    b = extract_torch(meta, x.to("meta"), method=method)
    real.train()
    a = extract_torch(real, x, method=method)
    assert b.extraction["method"] == ("fx" if method == "fx" else "hooks")
    assert b.to_dict() == a.to_dict()
    assert all(m.training for m in meta.modules())  # modes restored
    assert {k: v for k, v in meta.named_buffers()} == buffers  # same objects, still on meta
    assert all(t.is_meta for t in buffers.values())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in meta.modules())


class NoMetaKernel(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Sequential(nn.Linear(4, 4), nn.ReLU())

    def forward(self, x):
        h = self.a(x)
        if torch.equal(h, h):  # aten::equal has no meta kernel
            h = h * 2
        return self.b(h)


def test_op_without_meta_kernel_gives_a_partial_graph():
    model = _meta(NoMetaKernel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arch = extract_torch(model, torch.randn(3, 4, device="meta"))
    ex = arch.extraction
    assert ex["partial"] is True and ex["failed_op"] == "aten::equal"
    assert "aten::equal, which has no meta kernel" in ex["reason"]
    assert any("aten::equal" in str(w.message) for w in caught)
    assert arch.node("a").output_shapes == [[3, 4]] and arch.node("a").macs == 16
    for node_id in ("b", "b.0", "b.1"):  # not reached: shapes and MACs unknown
        node = arch.node(node_id)
        assert node.output_shapes is None and node.macs is None
        assert node.reason.startswith("not reached: ")
    assert arch.model.total_params == 40 and arch.model.macs_complete is False
    summary.architecture_pb(arch)  # a valid document: add_architecture writes it
    schema.from_json(arch.to_json())


LLAMA_70B = """
import json, resource, sys, torch
sys.path.insert(0, {root!r})
from transformers import LlamaConfig, LlamaForCausalLM
from tensorboard_archviz.extract.torch import extract_torch
cfg = LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                  num_attention_heads=64, num_key_value_heads=8, vocab_size=128256)
with torch.device("meta"):
    model = LlamaForCausalLM(cfg)
arch = extract_torch(model, {{"input_ids": torch.zeros(1, 4, dtype=torch.long, device="meta")}})
print(json.dumps({{"params": arch.model.total_params, "nodes": len(arch.nodes),
                  "memory": arch.model.memory["params_bytes"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def test_llama3_70b_on_meta_params_exact_nothing_allocated():
    pytest.importorskip("transformers")
    out = subprocess.run([sys.executable, "-c", LLAMA_70B.format(root=ROOT)], capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["params"] == 70_553_706_496 and r["nodes"] == 3_688
    assert r["memory"] == 4 * 70_553_706_496  # float32 bytes, from dtypes and shapes only
    # nothing allocated per parameter: its float32 weights would take 282 GB (this machine has
    # 24). The 2 GB target is a benchmark figure (bench/bench_meta_device.py), not asserted here:
    # the process' peak also holds torch and transformers themselves.
    assert r["rss_mb"] < 8192
