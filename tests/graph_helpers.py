"""Real models for the graph view's overview tests and benchmark, written into a logdir by a
subprocess (so neither TensorFlow nor torch loads into the test process):

- ``mobilenetv2``: ``keras.applications.MobileNetV2(weights=None)`` (156 layers, flat);
- ``resnet152``: ``keras.applications.ResNet152(weights=None)`` (517 layers, flat; bench only);
- ``gpt48``: a 48-block GPT-style PyTorch transformer (q/k/v projections, heads by view/transpose,
  matmul attention, output projection, MLP) written with ``add_architecture``;
- ``llama32``: ``transformers`` ``LlamaForCausalLM`` from a ``LlamaConfig`` with 32 tiny layers and
  random weights, written with ``add_architecture``;
- ``gpt2tiny``: ``transformers`` ``GPT2LMHeadModel`` with 2 tiny layers (its projections are
  Hugging Face ``Conv1D``: linear layers with a transposed weight), random weights;
- ``llama70b``: Llama-3-70B's configuration (80 layers, hidden 8192, 64 heads, 8 key/value heads,
  vocabulary 128,256; 70.6B parameters) built on torch's meta device (no memory, no weights)
  and extracted on a meta input (bench only).

    python tests/graph_helpers.py LOGDIR keras|torch NAME [NAME ...]
"""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

KERAS = {
    "mobilenetv2": "keras.applications.MobileNetV2(weights=None)",
    "resnet152": "keras.applications.ResNet152(weights=None)",
}
TORCH = ("gpt48", "llama32", "llama70b", "gpt2tiny")


def write_models(logdir: str, names, timeout: float = 600) -> None:
    """Write the named models into ``logdir/<name>`` (one subprocess per framework)."""
    procs = []
    k = [n for n in names if n in KERAS]
    t = [n for n in names if n in TORCH]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "tensorflow"))
    for kind, group in (("keras", k), ("torch", t)):
        if group:
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), logdir, kind, *group], env=env))
    for p in procs:
        if p.wait(timeout=timeout) != 0:
            raise RuntimeError("writing the models failed (exit %s)" % p.returncode)


def _keras(logdir: str, names) -> None:
    import keras  # noqa: F401  (used by the expressions in KERAS)
    from tensorboard_archviz.extract.keras import extract_keras
    from tensorboard_archviz.summary import ArchVizWriter
    for name in names:
        model = eval(KERAS[name])
        with ArchVizWriter(os.path.join(logdir, name)) as w:
            w.add_architecture(extract_keras(model), step=0)


def _gpt(n_blocks: int = 48, d: int = 32, heads: int = 4):
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d) for _ in range(4))

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = (p(x).view(b, t, heads, d // heads).transpose(1, 2)
                       for p in (self.q_proj, self.k_proj, self.v_proj))
            att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / (d // heads) ** 0.5, dim=-1)
            y = torch.matmul(att, v).transpose(1, 2).contiguous().view(b, t, d)
            return self.o_proj(y)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), Attention(), nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(100, d)
            self.h = nn.ModuleList(Block() for _ in range(n_blocks))
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, 100)

        def forward(self, idx):
            x = self.wte(idx)
            for blk in self.h:
                x = blk(x)
            return self.lm_head(self.ln_f(x))

    return GPT().eval(), torch.zeros(1, 8, dtype=torch.long)


def _llama(layers: int, **kw):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(num_hidden_layers=layers, **kw)
    return LlamaForCausalLM(cfg).eval(), torch.zeros(1, 8, dtype=torch.long)


# Llama-3-70B (meta-llama/Meta-Llama-3-70B config.json)
LLAMA3_70B = dict(vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_attention_heads=64,
                  num_key_value_heads=8, rope_theta=500000.0, max_position_embeddings=8192, rms_norm_eps=1e-5)


def _torch(logdir: str, names) -> None:
    import torch
    from torch.utils.tensorboard import SummaryWriter
    from tensorboard_archviz import add_architecture
    torch.manual_seed(0)
    for name in names:
        if name == "gpt48":
            model, x = _gpt()
        elif name == "gpt2tiny":
            from transformers import GPT2Config, GPT2LMHeadModel
            model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=64, n_positions=16, bos_token_id=0, eos_token_id=0)).eval()
            x = torch.zeros(1, 8, dtype=torch.long)
        elif name == "llama32":
            model, x = _llama(32, vocab_size=128, hidden_size=32, intermediate_size=64,
                              num_attention_heads=4, num_key_value_heads=2)
        else:
            with torch.device("meta"):
                model, _ = _llama(80, **LLAMA3_70B)
            x = torch.zeros(1, 8, dtype=torch.long, device="meta")
        w = SummaryWriter(os.path.join(logdir, name))
        add_architecture(w, model, x)
        w.close()


if __name__ == "__main__":
    out, kind, *models = sys.argv[1:]
    (_keras if kind == "keras" else _torch)(out, models)
