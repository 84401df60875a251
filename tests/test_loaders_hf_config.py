"""A Hugging Face config.json is untrusted input (issue 21 item 6): a layer / parameter budget
checked before anything is built (100,000 layers refused in under 5 s, naming the budget and the
flag that raises it), a wrong value is one line naming the field, only regular files are read (a
FIFO is refused at once), malformed JSON is reported as JSON with its line and column."""

import json
import os
import time

import pytest

from tensorboard_archviz import cli, hf_config
from test_cli import TINY_LLAMA, error_line, run_cli


def cli_error(capsys, *args):
    """The one stderr line of an in-process `archviz` run that fails."""
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert rc == 1 and out == "" and len(err.strip().splitlines()) == 1, (rc, out, err)
    return error_line(err)


def test_100000_layers_refused_fast_with_the_budget_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(dict(TINY_LLAMA, num_hidden_layers=100_000)))
    start = time.monotonic()
    rc, out, err = run_cli(["summary", "config.json"], tmp_path, keras_backend="torch")
    elapsed = time.monotonic() - start
    assert rc == 1 and out == "" and elapsed < 5, (elapsed, err)
    assert error_line(err) == (
        "archviz: error: config.json asks for 100,000 layers, over the layer budget of 256; "
        "pass --max-layers N to build it anyway")
    data = hf_config.read_config(str(tmp_path / "config.json"))
    hf_config.check_budget("config.json", data, max_layers=100_000)  # the override lets it pass


def test_budget_flags(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY_LLAMA))  # 2 layers, about 114,688 parameters by its sizes
    assert hf_config.count_layers(TINY_LLAMA) == 2
    assert hf_config.estimate_params(TINY_LLAMA) == 2 * (4 * 64 * 64 + 3 * 64 * 128) + 2 * 256 * 64
    assert cli_error(capsys, "summary", path, "--max-layers", 1) == (
        "archviz: error: %s asks for 2 layers, over the layer budget of 1; pass --max-layers N "
        "to build it anyway" % path)
    assert cli_error(capsys, "summary", path, "--max-params", 100_000) == (
        "archviz: error: %s asks for about 114,688 parameters (estimated from its sizes), over "
        "the parameter budget of 100,000; pass --max-params N to build it anyway" % path)
    assert cli_error(capsys, "summary", path, "--max-params", 0) == (
        "archviz: error: --max-params must be a positive integer, got 0")
    wide = dict(TINY_LLAMA, hidden_size=10 ** 7, num_hidden_layers=32)  # 2.6e16 parameters
    path.write_text(json.dumps(wide))
    assert "over the parameter budget of 2,000,000,000,000" in cli_error(capsys, "summary", path)


@pytest.mark.parametrize("text,message", [
    ('{"model_type": "llama", "num_hidden_layers": "many"}',
     'num_hidden_layers: "many" is not a positive integer'),
    ('{"model_type": "llama",\n "num_hidden_layers": 1e400}',
     "num_hidden_layers: 1e400 is not a finite number"),
    ('{"model_type": "llama", "hidden_size": true}', "hidden_size: true is not a positive integer"),
    ('{"model_type": "llama", "vocab_size": -3}', "vocab_size: -3 is not a positive integer"),
    ('{"model_type": "llava", "text_config": {"rms_norm_eps": NaN}}',
     "text_config.rms_norm_eps: NaN is not a finite number"),
    ('{"model_type": "llama",\n  "num_hidden_layers": 2\n  "hidden_size": 64}',
     "invalid JSON: Expecting ',' delimiter (line 3, column 3)"),
    ('{"model_type": "llama", "num_hidden_layers": 2', "invalid JSON: Expecting ',' delimiter "
                                                       "(line 1, column 47)"),
    ('[1, 2]', 'a Hugging Face config.json needs a "model_type" (e.g. "llama")'),
])
def test_wrong_values_are_one_line_naming_the_field(tmp_path, capsys, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    assert cli_error(capsys, "summary", path) == "archviz: error: %s: %s" % (path, message)


def test_wrong_value_through_the_command_line(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama", "num_hidden_layers": "many"}')
    rc, out, err = run_cli(["summary", "config.json"], tmp_path, keras_backend="torch")
    assert rc == 1 and err.strip() == (
        'archviz: error: config.json: num_hidden_layers: "many" is not a positive integer')


@pytest.mark.parametrize("name", ["config.json", "model.pt", "model.keras", "model"])
def test_a_fifo_is_refused_at_once(tmp_path, capsys, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would block forever
    start = time.monotonic()
    line = cli_error(capsys, "summary", fifo)
    assert time.monotonic() - start < 2
    assert line == ("archviz: error: %s is not a regular file (a FIFO, device or socket); "
                    "archviz reads model files only" % fifo)
    with pytest.raises(hf_config.ConfigError, match="is not a regular file"):
        hf_config.read_config(str(fifo))
