"""Every README example marked `<!-- test: run -->` runs as written.

A marked example is the first fenced code block after the marker line (blank lines may sit in
between): a ```python block runs as `python example.py`, a ```bash / ```sh block as
`bash -e example.sh`, each in its own subprocess, in an empty temporary directory (cwd) with the
repository on PYTHONPATH; it must exit with code 0. Without README.md the test is
skipped; a README.md without any marked example fails.
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
MARKER = "<!-- test: run -->"
LANGUAGES = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}


def marked_examples(text):
    """[(line number of the marker, language, code)] of the marked fenced blocks."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        fence = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[j]) if j < len(lines) else None
        if fence is None:
            raise AssertionError("README.md line %d: %s is not followed by a fenced code block"
                                 % (i + 1, MARKER))
        indent, ticks, lang = fence.group(1), fence.group(2), fence.group(3).lower()
        if lang not in LANGUAGES:
            raise AssertionError("README.md line %d: a marked block must be python or bash, got "
                                 "%r" % (j + 1, lang))
        body = []
        k = j + 1
        while k < len(lines) and not lines[k].strip().startswith(ticks):
            body.append(lines[k][len(indent):] if lines[k].startswith(indent) else lines[k])
            k += 1
        if k == len(lines):
            raise AssertionError("README.md line %d: the code block is not closed" % (j + 1))
        out.append((i + 1, LANGUAGES[lang], "\n".join(body) + "\n"))
    return out


def _params():
    if not os.path.exists(README):
        return [pytest.param(None, marks=pytest.mark.skip(reason="README.md does not exist yet"),
                             id="no-readme")]
    with open(README, encoding="utf-8") as f:
        examples = marked_examples(f.read())
    if not examples:
        return [pytest.param(None, id="no-marked-examples")]
    return [pytest.param(e, id="line%d-%s" % (e[0], e[1])) for e in examples]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("example", _params())
def test_readme_example_runs(example, tmp_path):
    if example is None:
        pytest.fail("README.md has no example marked for testing: put a line %r right before "
                    "each ```python (or ```bash) block that the test suite must run" % MARKER)
    line, language, code = example
    script = tmp_path / ("example.py" if language == "python" else "example.sh")
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                              else []))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MPLBACKEND", "Agg")
    cmd = [sys.executable, str(script)] if language == "python" else ["bash", "-e", str(script)]
    if language == "bash":  # `python` in a snippet is this interpreter
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=540)
    assert proc.returncode == 0, (
        "README.md example at line %d (%s) exited with %d\n--- code ---\n%s--- stdout ---\n%s"
        "--- stderr ---\n%s" % (line, language, proc.returncode, code, proc.stdout[-4000:],
                                proc.stderr[-8000:]))


def test_marked_examples_parser():
    text = "\n".join([
        "# t", MARKER, "", "```python", "print(1)", "```", "```python", "print('not marked')",
        "```", "- item", "  " + MARKER, "  ```bash", "  echo hi", "  ```"])
    assert marked_examples(text) == [(2, "python", "print(1)\n"), (11, "bash", "echo hi\n")]
    with pytest.raises(AssertionError, match="not followed by a fenced code block"):
        marked_examples(MARKER + "\ntext\n")
    with pytest.raises(AssertionError, match="must be python or bash"):
        marked_examples(MARKER + "\n```js\nx\n```\n")
