"""Code-structure rules that keep the code easy to change (run on every CI):

- no function over 80 lines, in the Python package and in the TypeScript frontend;
- no private name (``_x``) of one package module used by another module of the package;
- no import cycle among the package's Python modules (imports inside functions count too);
- no import cycle among ``frontend/src`` modules;
- no dashboard view importing another view's modules: views share code through ``common/`` and
  the shell contract (``view.ts``), and ``common/`` imports no view.

Each checker has a control case below showing that it can fail.

The TypeScript rules use a small parser (comments, strings and template literals removed, braces
matched) because the frontend's compiler (TypeScript 7) has no JavaScript compiler API.
"""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "tensorboard_archviz")
SRC = os.path.join(ROOT, "frontend", "src")
MAX_LINES = 80


def _files(top, ext):
    for d, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if x not in ("static", "node_modules", "__pycache__")]
        for f in sorted(files):
            if f.endswith(ext):
                yield os.path.join(d, f)


def _module_name(path, root=None):
    rel = os.path.relpath(path, root or ROOT)[:-3].replace(os.sep, ".")
    return rel[:-9] if rel.endswith(".__init__") else rel


# -- Python -------------------------------------------------------------------------------------

def python_long_functions(paths):
    out = []
    for path in paths:
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    out.append("%s:%d %s (%d lines)" % (os.path.relpath(path, ROOT), node.lineno,
                                                        node.name, n))
    return out


def _resolve(module, level, importer):
    if not level:
        return module or ""
    base = importer.split(".")
    if not importer.endswith("__init__"):
        pass
    base = base[:len(base) - level] if level <= len(base) else []
    return ".".join(base + ([module] if module else []))


def python_private_imports(paths):
    """Private names taken from another module of the package: ``from .x import _y`` or
    ``import ...x as m`` followed by ``m._y``."""
    out = []
    for path in paths:
        me = _module_name(path)
        pkg_of_me = me if path.endswith("__init__.py") else me.rsplit(".", 1)[0]
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                src = _resolve(node.module, node.level, pkg_of_me + ".x") if node.level else (
                    node.module or "")
                if not src.startswith("tensorboard_archviz"):
                    continue
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        out.append("%s imports %s from %s" % (me, a.name, src))
                    elif a.asname or True:
                        aliases[a.asname or a.name] = src + "." + a.name
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("tensorboard_archviz"):
                        aliases[a.asname or a.name.split(".")[0]] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                out.append("%s uses %s.%s" % (me, aliases[node.value.id], node.attr))
    return sorted(set(out))


def python_import_graph(paths, root=None):
    """Module -> the package modules it imports (anywhere in the file, lazy imports included).

    ``from .x import y`` is an edge to ``x.y`` when that is a module, else to ``x``; importing
    ``a.b.c`` is an edge to ``a.b.c`` only (not to the packages ``a`` and ``a.b`` that Python
    also initialises: a package's ``__init__`` importing its submodules is no cycle)."""
    mods = {_module_name(p, root): p for p in paths}   # a.b for a/b.py and a/b/__init__.py
    graph = {}
    for me, path in mods.items():
        pkg_of_me = me if path.endswith("__init__.py") else me.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
            if isinstance(node, ast.ImportFrom):
                src = (_resolve(node.module, node.level, pkg_of_me + ".x") if node.level
                       else node.module or "")
                for a in node.names:
                    cand = src + "." + a.name
                    deps.add(cand if cand in mods else src)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[me] = {d for d in deps if d in mods and d != me}
    return graph


# -- TypeScript ---------------------------------------------------------------------------------

def _blank_strings_and_comments(text):
    """The source with comments, strings, template literals and regex literals replaced by spaces
    (newlines kept), so braces can be matched and lines counted."""
    out = []
    i, n = 0, len(text)
    tmpl_depth = []  # brace depth at which a template literal's ${ } was opened
    depth = 0
    prev_sig = ""
    while i < n:
        c = text[i]
        two = text[i:i + 2]
        if two == "//":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j; continue
        if two == "/*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j; continue
        if c in "'\"":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * (j - i - 2) + c); i = j; prev_sig = c; continue
        if c == "`" or (c == "}" and tmpl_depth and tmpl_depth[-1] == depth):
            if c == "}":
                tmpl_depth.pop()
            j = i + 1
            while j < n and text[j] != "`":
                if text[j] == "\\":
                    j += 2; continue
                if text[j:j + 2] == "${":
                    break
                j += 1
            seg = text[i:j]
            out.append(re.sub(r"[^\n]", " ", seg))
            if j < n and text[j] == "`":
                out.append(" "); i = j + 1
            elif j < n:
                out.append("  "); tmpl_depth.append(depth); i = j + 2
            else:
                i = j
            prev_sig = "`"; continue
        if c == "/" and prev_sig and prev_sig in "(,=:[!&|?{};+-*%<>~^" :
            j = i + 1
            in_class = False
            while j < n and text[j] != "\n":
                if text[j] == "\\":
                    j += 2; continue
                if text[j] == "[":
                    in_class = True
                elif text[j] == "]":
                    in_class = False
                elif text[j] == "/" and not in_class:
                    break
                j += 1
            if j < n and text[j] == "/":
                out.append(" " * (j + 1 - i)); i = j + 1; prev_sig = "r"; continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if not c.isspace():
            prev_sig = c
        out.append(c); i += 1
    return "".join(out)


_TS_HEAD = re.compile(
    r"(\bfunction\b\s*\*?\s*([A-Za-z0-9_$]*)\s*(?:<[^>{}]*>)?\s*\()"
    r"|(^[ \t]*(?:(?:public|private|protected|static|async|readonly|override|get|set)\s+)*"
    r"(?!if\b|for\b|while\b|switch\b|catch\b|return\b|else\b|do\b|try\b|function\b)"
    r"([A-Za-z_$][A-Za-z0-9_$]*)\s*(?:<[^>{}]*>)?\s*\()"
    r"|(=>\s*\{)",
    re.M)


def _match(text, at, open_c, close_c):
    depth = 0
    for j in range(at, len(text)):
        if text[j] == open_c:
            depth += 1
        elif text[j] == close_c:
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def _body_start(text, paren_at):
    """Where the body's ``{`` of a function whose parameter list opens at ``paren_at`` is, or
    None when what follows the parameters is not a body (a call, a type, an expression)."""
    j = _match(text, paren_at, "(", ")") + 1
    m = re.compile(r"\s*").match(text, j)
    j = m.end()
    if text.startswith(":", j):  # a return type: skip it (an object type is one {...})
        j += 1
        while j < len(text):
            c = text[j]
            if c == "{":
                k = j
                before = text[:k].rstrip()
                if before.endswith((":", "|", "&", "<", ",", "(")):
                    j = _match(text, k, "{", "}") + 1
                    continue
                return k
            if c in "(<[":
                j = _match(text, j, c, {"(": ")", "<": ">", "[": "]"}[c]) + 1
                continue
            if c in ";=)":
                return None
            j += 1
        return None
    return j if text.startswith("{", j) else None


def _function_bodies(text):
    for m in _TS_HEAD.finditer(text):
        if m.group(5):
            yield "(arrow function)", m.start(), m.end() - 1
            continue
        body = _body_start(text, m.end() - 1)
        if body is not None:
            yield (m.group(2) or m.group(4) or "(function)"), m.start(), body


def ts_long_functions(paths):
    out = []
    for path in paths:
        text = _blank_strings_and_comments(open(path, encoding="utf-8").read())
        for name, start, open_at in _function_bodies(text):
            close = _match(text, open_at, "{", "}")
            start_line = text.count("\n", 0, start) + 1
            n = text.count("\n", start, close) + 1
            if n > MAX_LINES:
                out.append("%s:%d %s (%d lines)" % (os.path.relpath(path, ROOT), start_line,
                                                    name, n))
    return sorted(set(out))


_TS_IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"](\.[^'"]+)['"]""", re.M)


def ts_import_graph(paths):
    graph = {}
    for path in paths:
        me = os.path.relpath(path, SRC)
        deps = set()
        for m in _TS_IMPORT.finditer(open(path, encoding="utf-8").read()):
            target = os.path.normpath(os.path.join(os.path.dirname(path), m.group(1)))
            for cand in (target + ".ts", target, os.path.join(target, "index.ts")):
                if os.path.isfile(cand):
                    deps.add(os.path.relpath(cand, SRC))
                    break
        graph[me] = deps
    return graph


def import_cycles(graph):
    """Every strongly connected component of more than one module (Tarjan); for the TypeScript
    and the Python import graphs alike."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def view_of(module):
    """Which dashboard view a frontend module (path relative to ``frontend/src``) belongs to, or
    None for the shell and shared modules (app, view contract, api, dom, format, common/, ...)."""
    parts = module.replace(os.sep, "/").split("/")
    if parts[0] == "graph":
        return "graph"
    if len(parts) > 1:
        return None
    base = parts[0][:-3] if parts[0].endswith(".ts") else parts[0]
    for prefix, view in (("table", "table"), ("layered_", "layered"), ("compare_", "compare"),
                         ("filters_", "filters"), ("signals", "signals")):
        if base.startswith(prefix):
            return view
    if base == "timeline":
        return "timeline"
    if "signals" in base:
        return "signals"
    return None


def view_crossings(graph):
    """Imports from one view into another view's modules, and from ``common/`` into any view."""
    out = []
    for me, deps in sorted(graph.items()):
        mine = view_of(me)
        shared = me.replace(os.sep, "/").startswith("common/")
        for d in sorted(deps):
            theirs = view_of(d)
            if theirs and ((mine and theirs != mine) or shared):
                out.append("%s (%s) imports %s (%s)" % (me, "common" if shared else mine, d, theirs))
    return out


# -- the checks themselves, and checks that the checkers can fail --------------------------------

def test_no_python_function_over_80_lines():
    assert python_long_functions(_files(PKG, ".py")) == []


def test_no_private_names_across_package_modules():
    assert python_private_imports(list(_files(PKG, ".py"))) == []


def test_no_import_cycles_in_python_package():
    assert import_cycles(python_import_graph(_files(PKG, ".py"))) == []


def test_no_typescript_function_over_80_lines():
    assert ts_long_functions(_files(SRC, ".ts")) == []


def test_no_import_cycles_in_frontend():
    assert import_cycles(ts_import_graph(list(_files(SRC, ".ts")))) == []


def test_no_view_imports_another_view():
    assert view_crossings(ts_import_graph(list(_files(SRC, ".ts")))) == []


def test_checkers_catch_what_they_look_for(tmp_path):
    long_py = tmp_path / "long.py"
    long_py.write_text("def f():\n" + "    x = 1\n" * 80 + "\n")
    assert [l.split()[1] for l in python_long_functions([str(long_py)])] == ["f"]
    body = "\n".join("  const a%d = `${x}}` + '{' + /[{]/.source;" % i for i in range(80))
    ts = tmp_path / "long.ts"
    ts.write_text("export function big(x: number): void {\n%s\n}\n"
                  "class A {\n  method(a: string): number {\n    return 1;\n  }\n}\n"
                  "const g = (y: number) => {\n%s\n};\n" % (body, body))
    found = ts_long_functions([str(ts)])
    assert len(found) == 2 and "big" in found[0] and "arrow" in found[1]
    assert import_cycles({"a.ts": {"b.ts"}, "b.ts": {"a.ts"}, "c.ts": {"a.ts"}}) == [
        ["a.ts", "b.ts"]]

    # a Python circle with one side lazy (inside a function); a package and its submodule form
    # one only when the submodule imports the package back (`tensorboard_archviz/__init__` -> `a`
    # alone is none)
    pkg = tmp_path / "tensorboard_archviz"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n    return a\n")
    (pkg / "sub" / "__init__.py").write_text("from .c import g\n")
    (pkg / "sub" / "c.py").write_text("import tensorboard_archviz.sub\ng = 1\n")
    graph = python_import_graph(_files(str(pkg), ".py"), root=str(tmp_path))
    assert import_cycles(graph) == [["tensorboard_archviz.a", "tensorboard_archviz.b"],
                                       ["tensorboard_archviz.sub", "tensorboard_archviz.sub.c"]]
    # views: one view importing another's module, common/ importing a view; the shell may
    assert view_crossings({
        "table_fold.ts": {"graph/derive.ts", "common/folding.ts", "dom.ts"},
        "layered_svg.ts": {"layered_model.ts", "common/palette.ts"},
        "common/folding.ts": {"table_columns.ts"},
        "app.ts": {"graph/index.ts", "table.ts", "signals_view.ts"},
        "signals_view.ts": {"timeline.ts"},
        "graph/view.ts": {"graph/model.ts", "gradient_overlay.ts"},
    }) == ["common/folding.ts (common) imports table_columns.ts (table)",
           "signals_view.ts (signals) imports timeline.ts (timeline)",
           "table_fold.ts (table) imports graph/derive.ts (graph)"]
