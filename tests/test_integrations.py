"""Training integrations with each library's real trainer, 2 steps on tiny data (CPU):
PyTorch Lightning's ``Trainer`` with its ``TensorBoardLogger`` and Hugging Face's ``Trainer``
reporting to TensorBoard. The runs are read back through one real TensorBoard: the architecture
must sit in the same run as the trainer's own scalars, written once, at step 0, params exact.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("lightning")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer needs it

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import hf_helpers as H  # noqa: E402
from conftest import PLUGIN, get_json, run_tensorboard, wait_for_run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIGHTNING_LOG = "tensorboard_archviz.integrations.lightning"
TRAINER_LOG = "tensorboard_archviz.integrations.hf_trainer"


def lightning_net():
    import lightning as L

    class TinyNet(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 8 * 8, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return TinyNet()


def fit_lightning(root, callback, logger=True):
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    trainer = L.Trainer(default_root_dir=str(root), max_steps=2, accelerator="cpu",
                        callbacks=[callback], enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False,
                        log_every_n_steps=1,
                        logger=TensorBoardLogger(str(root)) if logger else False)
    model = lightning_net()
    trainer.fit(model, DataLoader(data, batch_size=4))
    return trainer, model


def fit_hf(output_dir, callback):
    from transformers import Trainer, TrainingArguments

    model = H.gpt2()
    ids = H.token_ids(seq=8, batch=8)
    data = [{"input_ids": r, "attention_mask": torch.ones_like(r), "labels": r} for r in ids]
    args = TrainingArguments(output_dir=str(output_dir), max_steps=2, per_device_train_batch_size=4,
                             use_cpu=True, report_to=["tensorboard"], logging_steps=1,
                             save_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    trainer.train()
    return trainer, model


def ours(caplog, name):
    return [r for r in caplog.records if r.name == name and r.levelno >= logging.WARNING]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both trainings, 2 steps each, into one log root; the callbacks and models."""
    from tensorboard_archviz.integrations.hf_trainer import ArchVizTrainerCallback
    from tensorboard_archviz.integrations.lightning import ArchVizLightningCallback

    root = tmp_path_factory.mktemp("integrations")
    lcb = ArchVizLightningCallback()
    ltrainer, lmodel = fit_lightning(root / "lightning", lcb)
    hcb = ArchVizTrainerCallback()
    htrainer, hmodel = fit_hf(root / "hf", hcb)
    return {"root": root, "lightning": (ltrainer, lmodel, lcb), "hf": (htrainer, hmodel, hcb)}


@pytest.fixture(scope="module")
def served(trained):
    root = trained["root"]
    ltrainer = trained["lightning"][0]
    hcb = trained["hf"][2]
    runs = {"lightning": os.path.relpath(ltrainer.logger.log_dir, root),
            "hf": os.path.relpath(hcb.written_dir, root)}
    with run_tensorboard(root) as url:
        for run in runs.values():
            wait_for_run(url, run)
        yield url, runs


def scalar_tags(url, run):
    status, tags = get_json(url + "/data/plugin/scalars/tags")
    assert status == 200, tags
    return set(tags.get(run, {}))


def test_lightning_writes_once_beside_the_scalars(trained, served):
    url, runs = served
    trainer, model, cb = trained["lightning"]
    assert trainer.global_step == 2 and cb.written_step == 0
    status, listing = get_json(url + PLUGIN + "/runs")
    assert status == 200 and listing[runs["lightning"]]["steps"] == [0]
    arch = H.fetch_architecture(url, runs["lightning"])
    assert arch["model"]["class_name"] == "TinyNet"
    assert arch["model"]["total_params"] == H.unique_params(model) == 40 + 2570
    n = H.nodes_by_id(arch)
    # the first batch's x (4 examples), cut to one example: the targets are not an input
    assert arch["inputs"] == ["x"] and n["x"]["output_shapes"] == [[1, 1, 8, 8]]
    assert n["conv"]["output_shapes"] == [[1, 4, 8, 8]] and n["fc"]["output_shapes"] == [[1, 10]]
    assert H.reaches(arch, "x", "fc") and ("x", "conv") in H.edge_set(arch)
    assert "loss" in scalar_tags(url, runs["lightning"])  # same run as Lightning's scalars


def test_hf_trainer_writes_once_into_the_trainers_run(trained, served):
    url, runs = served
    trainer, model, cb = trained["hf"]
    assert trainer.state.global_step == 2 and cb.written_step == 0
    status, listing = get_json(url + PLUGIN + "/runs")
    assert status == 200 and listing[runs["hf"]]["steps"] == [0]
    assert runs["hf"].startswith(os.path.join("hf", "runs") + os.sep)
    arch = H.fetch_architecture(url, runs["hf"])
    assert arch["model"]["class_name"] == "GPT2LMHeadModel"
    assert arch["model"]["total_params"] == H.unique_params(model)
    # the collated batch as the Trainer fed the model, labels left out, one example kept
    assert arch["inputs"] == ["input_ids", "attention_mask"]
    n = H.nodes_by_id(arch)
    assert n["input_ids"]["output_shapes"] == [[1, 8]]
    assert n["lm_head"]["output_shapes"] == [[1, 8, 100]]
    assert not any(v["class_name"] == "cross_entropy" for v in n.values())
    assert "train/loss" in scalar_tags(url, runs["hf"])  # the Trainer's own TensorBoard run


def test_lightning_failure_warns_once_and_training_goes_on(tmp_path, caplog):
    from tensorboard_archviz.integrations.lightning import ArchVizLightningCallback

    cb = ArchVizLightningCallback(input_to_model=torch.randn(1, 3, 5, 5))  # does not fit conv
    with caplog.at_level(logging.WARNING, logger=LIGHTNING_LOG):
        trainer, _ = fit_lightning(tmp_path / "bad_input", cb)
    assert trainer.global_step == 2 and cb.written_step is None
    warned = ours(caplog, LIGHTNING_LOG)
    assert len(warned) == 1 and "conv" in warned[0].getMessage()
    assert not list((tmp_path / "bad_input").rglob("*.archviz"))

    caplog.clear()
    cb = ArchVizLightningCallback()
    with caplog.at_level(logging.WARNING, logger=LIGHTNING_LOG):
        trainer, _ = fit_lightning(tmp_path / "no_logger", cb, logger=False)
    assert trainer.global_step == 2 and cb.written_step is None
    warned = ours(caplog, LIGHTNING_LOG)
    assert len(warned) == 1 and "no TensorBoardLogger" in warned[0].getMessage()


def test_hf_trainer_failure_warns_once_and_training_goes_on(tmp_path, caplog):
    from tensorboard_archviz.integrations.hf_trainer import ArchVizTrainerCallback

    cb = ArchVizTrainerCallback(writer=object())  # not a SummaryWriter
    with caplog.at_level(logging.WARNING, logger=TRAINER_LOG):
        trainer, _ = fit_hf(tmp_path / "out", cb)
    assert trainer.state.global_step == 2 and cb.written_step is None
    warned = ours(caplog, TRAINER_LOG)
    assert len(warned) == 1 and "SummaryWriter" in warned[0].getMessage()


def test_hf_trainer_only_the_main_process_writes(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from tensorboard_archviz.integrations.hf_trainer import ArchVizTrainerCallback

    model = H.gpt2()
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    cb = ArchVizTrainerCallback()
    cb.on_train_begin(args, TrainerState(is_world_process_zero=False), TrainerControl(),
                      model=model)
    model(input_ids=H.token_ids())
    cb.on_step_end(args, TrainerState(is_world_process_zero=False), TrainerControl(), model=model)
    assert cb.written_step is None and not list(tmp_path.rglob("*.archviz"))
    assert not model._forward_pre_hooks  # nothing left on the model


def check_signals(run_dir, steps):
    """Signals at `steps` on the architecture's node ids (read back from the event files)."""
    from signals_fixtures import read_signals

    r = read_signals(str(run_dir))
    assert r["steps"] == steps and r["arch"] is not None
    ids = {n["id"] for n in r["arch"]["nodes"]}
    for step in steps:
        sig = r["docs"][step]["signals"]
        assert {"weights.rms", "gradients.rms", "activations.mean"} <= set(sig)
        assert all(set(per) <= ids for per in sig.values())
        assert all(v > 0 for v in sig["gradients.rms"].values())  # before the optimizer step
    assert "updates.ratio" in r["docs"][steps[1]]["signals"]
    return r


def test_lightning_layer_signals_for_two_steps(tmp_path):
    from tensorboard_archviz.integrations.lightning import ArchVizLightningCallback

    cb = ArchVizLightningCallback(layer_signals_every=1)
    trainer, _ = fit_lightning(tmp_path, cb)
    assert trainer.global_step == 2 and cb.signals.written == [0, 1]
    r = check_signals(trainer.logger.log_dir, [0, 1])
    assert r["docs"][0]["meta"]["batch_size"] == 4  # the first batch, up to 32 rows
    assert set(r["docs"][0]["signals"]["weights.rms"]) == {"conv", "fc"}
    with pytest.raises(ValueError, match="layer_signals_every"):
        ArchVizLightningCallback(layer_signals_every="sometimes")


def test_hf_trainer_layer_signals_for_two_steps(tmp_path):
    from tensorboard_archviz.integrations.hf_trainer import ArchVizTrainerCallback

    cb = ArchVizTrainerCallback(layer_signals_every=1)
    trainer, _ = fit_hf(tmp_path / "out", cb)
    assert trainer.state.global_step == 2 and cb.signals.written == [0, 1]
    r = check_signals(cb.written_dir, [0, 1])
    assert "lm_head" in r["docs"][1]["signals"]["activations.mean"]
    assert r["docs"][0]["meta"]["batch_size"] == 4


def test_example_input_from_the_usual_batches():
    from tensorboard_archviz.integrations.batch import example_input, first_examples

    class TwoInputs(nn.Module):
        def forward(self, a, b, scale=1.0):
            return a * b * scale

    class Kwargs(nn.Module):
        def forward(self, **inputs):
            return inputs

    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    net = lightning_net()
    assert example_input(net, x) is x
    assert example_input(net, (x, y)) is x  # (inputs, targets): forward takes one argument
    assert example_input(TwoInputs(), [x, x, y]) == (x, x)
    gpt = H.gpt2()
    ids = H.token_ids(batch=4)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids,
             "index": torch.arange(4)}
    # the entries GPT2LMHeadModel.forward names (it also takes **kwargs), labels dropped
    assert list(example_input(gpt, batch, drop=("labels",))) == ["input_ids", "attention_mask"]
    # a forward(**inputs) naming nothing gets every entry but the dropped ones
    assert list(example_input(Kwargs(), batch, drop=("labels",))) == ["input_ids",
                                                                       "attention_mask", "index"]
    with pytest.raises(ValueError, match=r"\['index'\] match none of TinyNet.forward"):
        example_input(net, {"index": ids})
    with pytest.raises(ValueError, match="needs 2 inputs; the batch has 1"):
        example_input(TwoInputs(), (x,))
    with pytest.raises(TypeError, match="batch of type str"):
        example_input(net, "not a batch")
    # Lightning: a batch that does not fit falls back to the module's example_input_array
    from tensorboard_archviz.integrations.lightning import ArchVizLightningCallback

    net.example_input_array = torch.zeros(2, 1, 8, 8)
    assert ArchVizLightningCallback().example(net, "not a batch") is net.example_input_array
    assert ArchVizLightningCallback().example(net, (x, y)).shape == (1, 1, 8, 8)
    cut = first_examples({"input_ids": ids, "pair": (x, 3)}, 1)
    assert cut["input_ids"].shape == (1, 8) and cut["pair"][0].shape == (1, 1, 8, 8)
    assert cut["pair"][1] == 3


DDP_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard_archviz.integrations.lightning import ArchVizLightningCallback

    class BNNet(L.LightningModule):  # BatchNorm buffers: DDP broadcasts them on its forward
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4 * 8 * 8, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    if __name__ == "__main__":
        torch.manual_seed(0)
        data = TensorDataset(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
        cb = ArchVizLightningCallback()
        trainer = L.Trainer(default_root_dir=sys.argv[1], max_steps=2, accelerator="cpu",
                            devices=2, strategy="ddp", callbacks=[cb], enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=False,
                            logger=TensorBoardLogger(sys.argv[1]), log_every_n_steps=1)
        trainer.fit(BNNet(), DataLoader(data, batch_size=4))
        print(json.dumps({"rank": trainer.global_rank, "step": trainer.global_step,
                          "written": cb.written_step}), flush=True)
""")


def read_architectures(logdir):
    """{run: [(step, architecture dict)]} through TensorBoard's data provider."""
    from tensorboard import context
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider

    from tensorboard_archviz import metadata

    multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"archviz": 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = MultiplexerDataProvider(multiplexer, str(logdir))
    series = provider.read_tensors(context.RequestContext(), experiment_id="",
                                   plugin_name=metadata.PLUGIN_NAME, downsample=100)
    return {run: [(d.step, json.loads(d.numpy.item())) for d in tags[metadata.ARCHITECTURE_TAG]]
            for run, tags in series.items()}


def test_lightning_ddp_only_rank_zero_writes(tmp_path):
    """Two CPU processes under Lightning's DDP strategy: rank 0 writes once, nothing hangs."""
    script = tmp_path / "ddp_fit.py"  # a file: Lightning relaunches it for rank 1
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "logs")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # both ranks print to the same pipe: their lines may run together
    found = [json.loads(m) for m in re.findall(r"\{[^{}]*\}", proc.stdout)]
    results = sorted((r["rank"], r["step"], r["written"]) for r in found)
    assert results == [(0, 2, 0), (1, 2, None)]
    written = read_architectures(tmp_path / "logs")
    assert list(written) == ["lightning_logs/version_0"]
    (step, arch), = written["lightning_logs/version_0"]
    assert step == 0 and arch["model"]["total_params"] == 40 + 8 + 2570
    assert H.nodes_by_id(arch)["bn"]["output_shapes"] == [[1, 4, 8, 8]]


def test_trainer_log_dir_follows_the_trainers_tensorboard_writer(tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter
    from transformers import TrainingArguments

    from tensorboard_archviz.integrations.hf_trainer import trainer_log_dir

    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to=[])
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    # no writer opened yet: a new run directory like the Trainer's default, <output_dir>/runs/*
    fresh = trainer_log_dir(args)
    assert os.path.dirname(fresh) == str(tmp_path / "out" / "runs")
    # this process's SummaryWriter under <output_dir>/runs: its directory, not another process's
    (tmp_path / "out" / "runs" / "other_host").mkdir(parents=True)
    (tmp_path / "out" / "runs" / "other_host" / "events.out.tfevents.1.otherhost.1.0").touch()
    writer = SummaryWriter(str(tmp_path / "out" / "runs" / "Jan01_00-00-00_here"))
    writer.close()
    assert trainer_log_dir(args) == str(tmp_path / "out" / "runs" / "Jan01_00-00-00_here")
    # the variable the Trainer's TensorBoardCallback reads wins
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    assert trainer_log_dir(args) == str(tmp_path / "tb")
