"""Tiny random-weight Hugging Face models (nothing is downloaded) and helpers to check a written
architecture: unique parameter counts, graph reachability, reading a run back from TensorBoard.

Import this module only from tests that need ``transformers`` (it sets ``HF_HUB_OFFLINE=1``
before importing it, so a test can never reach the hub).
"""

from __future__ import annotations

import os
import urllib.parse
from collections import defaultdict, deque

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402

from conftest import PLUGIN, get_json  # noqa: E402

VOCAB = 100
SEQ = 8


def unique_params(model) -> int:
    """``sum(p.numel())`` over the model's unique parameters (tied weights once)."""
    return sum(p.numel() for p in model.parameters())


def token_ids(seq=SEQ, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, seq), generator=g)


def llama():
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=64,
                                   tie_word_embeddings=False)
    return transformers.LlamaForCausalLM(cfg)


def gpt2():
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                  bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg)


def bert():
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=64)
    return transformers.BertModel(cfg)


def t5():
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                num_decoder_layers=2, num_heads=4, decoder_start_token_id=0)
    return transformers.T5ForConditionalGeneration(cfg)


def vit():
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                                 num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64, num_labels=10)
    return transformers.ViTForImageClassification(cfg)


def padded_mask(ids, pad=2):
    """An attention mask whose last `pad` positions are padding (an all-ones mask is skipped by
    transformers' SDPA path, so it would reach no node)."""
    mask = torch.ones_like(ids)
    mask[:, -pad:] = 0
    return mask


def example_inputs():
    """{family: (model, input_to_model)} for the five transformers families."""
    torch.manual_seed(0)
    ids = token_ids()
    return {
        "llama": (llama(), {"input_ids": ids}),
        "gpt2": (gpt2(), {"input_ids": ids}),
        "bert": (bert(), {"input_ids": ids, "attention_mask": padded_mask(ids)}),
        "t5": (t5(), {"input_ids": ids, "decoder_input_ids": ids[:, :5]}),
        "vit": (vit(), {"pixel_values": torch.randn(1, 3, 32, 32)}),
    }


def edge_set(arch: dict) -> set:
    return {(e["source"], e["target"]) for e in arch["edges"]}


def reaches(arch: dict, source: str, target: str) -> bool:
    """True when a directed path of edges leads from node `source` to node `target`."""
    succ = defaultdict(list)
    for s, t in edge_set(arch):
        succ[s].append(t)
    seen, todo = {source}, deque([source])
    while todo:
        for nxt in succ[todo.popleft()]:
            if nxt == target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def nodes_by_id(arch: dict) -> dict:
    return {n["id"]: n for n in arch["nodes"]}


def node_total(node: dict) -> int:
    return node["params"]["trainable"] + node["params"]["non_trainable"]


def fetch_architecture(url: str, run: str, step=None) -> dict:
    """The architecture JSON of `run` as TensorBoard's plugin route serves it (asserts 200)."""
    query = {"run": run}
    if step is not None:
        query["step"] = str(step)
    status, body = get_json(url + PLUGIN + "/architecture?" + urllib.parse.urlencode(query))
    assert status == 200, (status, body)
    return body
