"""Small helpers shared by every step of the data flow (no framework imports here).

One definition each: how an exception becomes one readable line, how untrusted text is made safe
for a terminal, the product of a shape's dimensions.
"""
import re
from typing import Iterable, Optional

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# C0 and C1 control characters except tab and newline; DEL too.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control(text: str) -> str:
    """``text`` without terminal escape sequences or control characters (each shown as ``?``).

    Layer and model names are untrusted: printed raw they could clear the screen, set the window
    title or write the clipboard (OSC 52).
    """
    return _CONTROL.sub("?", _ANSI.sub("", str(text)))


def one_line(e: BaseException, limit: int = 300) -> str:
    """The useful line of an exception as ``Type: message``, cleaned for a terminal or a log.

    Tracebacks embedded in messages (TorchScript) end with the real error: a line that looks like
    ``SomeError: ...`` is preferred; otherwise the first non-empty line.
    """
    text = strip_control(str(e))
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
