"""Small helpers shared by every step of the data flow (no framework imports here).

One definition each: how an exception becomes one readable line, how untrusted text is made safe
for a terminal, the product of a shape's dimensions.
"""
import re
import sys
from typing import Iterable, Optional

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# C0 and C1 control characters except tab and newline; DEL too; the bidirectional-text controls
# (LRM, RLM, ALM, the embeddings, overrides and isolates U+202A-202E, U+2066-2069) and the
# Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                      "\u202a-\u202e\u2066-\u2069]")


def strip_control(text: str, keep_newlines: bool = False) -> str:
    """``text`` without terminal escape sequences, control characters, bidirectional-text
    controls or newlines (each shown as ``?``); ``keep_newlines`` keeps ``\\n`` (for text that
    is split into lines afterwards).

    Layer and model names are untrusted: printed raw they could clear the screen, set the window
    title, write the clipboard (OSC 52), forge a second line (``x\\nModel: "evil"``) or reorder
    what the terminal shows (bidi overrides).
    """
    text = _CONTROL.sub("?", _ANSI.sub("", str(text)))
    return text if keep_newlines else text.replace("\n", "?")


def one_line(e: BaseException, limit: int = 300) -> str:
    """The useful line of an exception as ``Type: message``, cleaned for a terminal or a log.

    Tracebacks embedded in messages (TorchScript) end with the real error: a line that looks like
    ``SomeError: ...`` is preferred; otherwise the first non-empty line.
    """
    text = strip_control(str(e), keep_newlines=True)
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    line = next((l for l in reversed(lines) if re.match(r"^[A-Za-z_.]*(Error|Exception):", l)),
                None)
    if line is None:
        line = "%s: %s" % (type(e).__name__, lines[0]) if lines else type(e).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."


def product(dims: Iterable[Optional[int]]) -> Optional[int]:
    """The product of a shape's dimensions, or None when any dimension is unknown."""
    out = 1
    for d in dims:
        if d is None:
            return None
        out *= int(d)
    return out


# ---------------------------------------------------------------------------------------------
# JSON nesting depth: deeper documents are refused when written and when read (Python's JSON
# codecs and TensorBoard's JSON cleansing recurse once per level and fail near 1,000 levels).

MAX_JSON_DEPTH = 100
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]', re.S)


def _path_text(stack: list) -> str:
    parts = []
    for kind, label in stack[:8]:
        if kind == "[":
            parts.append("[%d]" % label)
        else:
            parts.append(("." if parts else "") + strip_control(str(label))[:40])
    text = "".join(parts) or "<root>"
    return text + (".…" if len(stack) > 8 else "")


def _depth_message(path: str, limit: int) -> str:
    return "%s: nested deeper than the JSON depth limit of %d levels" % (path, limit)


def _max_depth(b) -> int:
    """Deepest nesting of [ / { outside strings in JSON bytes `b` (a uint8 array), vectorised."""
    import numpy as np

    if not len(b):
        return 0
    pos = np.arange(len(b))
    backslash = b == 0x5C
    # a quote is escaped when an odd number of backslashes precedes it
    last_other = np.maximum.accumulate(np.where(backslash, -1, pos))
    run = pos - 1 - np.concatenate(([-1], last_other[:-1]))
    quote = (b == 0x22) & (run % 2 == 0)
    outside = (np.cumsum(quote) - quote) % 2 == 0  # before this byte, strings were all closed
    opens = ((b == 0x5B) | (b == 0x7B)) & outside
    closes = ((b == 0x5D) | (b == 0x7D)) & outside
    return int(np.cumsum(opens.astype(np.int32) - closes.astype(np.int32)).max())


def json_depth_problem(text, limit: int = MAX_JSON_DEPTH) -> Optional[str]:
    """None when JSON ``text`` (str or bytes) nests at most ``limit`` levels of arrays/objects;
    otherwise one line naming the field that goes deeper (checked without recursion)."""
    import numpy as np

    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if _max_depth(np.frombuffer(raw, dtype=np.uint8)) <= limit:
        return None
    stack: list = []
    key = None
    for m in _JSON_TOKEN.finditer(raw.decode("utf-8", "replace")):
        tok = m.group()
        if tok in "{[":
            if len(stack) >= limit:
                return _depth_message(_path_text(stack), limit)
            stack.append([tok, 0 if tok == "[" else None])
        elif tok in "}]" and stack:
            stack.pop()
        elif tok == ":" and stack:
            stack[-1][1] = key
        elif tok == "," and stack and stack[-1][0] == "[":
            stack[-1][1] += 1
        elif tok.startswith('"'):
            key = tok[1:-1]
    return _depth_message(_path_text(stack), limit)


def value_depth_problem(value, limit: int = MAX_JSON_DEPTH) -> Optional[str]:
    """Like ``json_depth_problem`` for a decoded value (dicts and lists), without recursion."""
    todo = [(value, [])]
    while todo:
        obj, path = todo.pop()
        if isinstance(obj, dict):
            items, kind = obj.items(), "{"
        elif isinstance(obj, (list, tuple)):
            items, kind = enumerate(obj), "["
        else:
            continue
        if len(path) >= limit:
            return _depth_message(_path_text(path), limit)
        for k, v in items:
            if isinstance(v, (dict, list, tuple)):
                todo.append((v, path + [(kind, k)]))
    return None


def torch_rank_is_zero() -> bool:
    """False on a non-zero rank of an initialized ``torch.distributed`` process group (the one
    rank rule of the PyTorch helpers and of the Keras callback on the torch backend). Never
    imports torch: when it is not imported, no process group can exist."""
    torch = sys.modules.get("torch")
    if torch is None:
        return True
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank() == 0
    except Exception:  # noqa: BLE001 - no usable torch.distributed: a single process
        pass
    return True
