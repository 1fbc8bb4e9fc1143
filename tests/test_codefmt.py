"""codefmt: Python source ⇄ marker text; exact format, AST-preserving round trip on tricky code, errors."""
import ast
import os
import random
import re
import sysconfig
import textwrap

import pytest

from pangu_codeclm import codefmt
from pangu_codeclm.codefmt import CodeFormatError, markers_to_source, source_to_markers

TRICKY = {
    "nested_decorators": '''
        import functools

        @functools.lru_cache(maxsize=None)
        @staticmethod
        def outer(a, *args, b=2, **kw):
            def inner(x):
                def innermost():
                    return x
                return innermost
            class Local:
                attr: int = 1

                def method(self):
                    return self.attr
            return inner(a), Local
        ''',
    "multiline_strings": '''
        def f():
            """Docstring.

              indented line
        column-zero line inside the string
            """
            s = \'\'\'a
        b\'\'\' + "x" 'y'
            t = "tab\\tand \\
        continued"
            return f"{s!r:>10} {t}" + rb"\\d+"
        ''',
    "comments": '''
        # leading comment
        def g(a,  # comment inside brackets
              b):  # trailing on def
            # comment-only line before the body
            x = [1,
                 # comment in a list
                 2]  # trailing
            if x:
                pass
        # comment at column 0 inside the function
            return x  # done
        ''',
    "continuations": '''
        def h(a, b):
            total = a + \\
                b + \\
                1
            value = (a
                     + b)
            d = {
                "k": [a,
                      b],
            }
            return total, value, d
        ''',
    "async_match": '''
        async def worker(queue, command):
            async with queue.lock() as lock:
                async for item in queue:
                    await lock.process(item)
            match command:
                case {"action": "go", "to": [x, y]} if x > 0:
                    return x, y
                case Point(x=0) | None:
                    return 0
                case _:
                    return [i async for i in queue]
        ''',
    "misc": '''
        def misc(n):
            global G; G = n
            if n: return 1
            elif (m := n - 1) > 0:
                return lambda *a, **k: (yield from a)
            try:
                raise ValueError("x") from None
            except* (ValueError, TypeError) as e:
                del e
            finally:
                assert n, "msg"
            while False:
                break
            else:
                nonlocal_name = ...
            return n @ n, n // 2, -n ** 2, not n, n if n else None
        ''',
    "marker_literals": '''
        def marker_literals():
            a = "<NEW_LINE>"
            b = \'\'\'<INDENT>
        <DEDENT>\'\'\'
            return a + b
        ''',
}


def _roundtrip_equal(src):
    out = markers_to_source(source_to_markers(src))
    return ast.dump(ast.parse(out)) == ast.dump(ast.parse(src)), out


def test_exact_marker_format():
    src = "def f(x):\n\n    return  x + 1\n"
    assert source_to_markers(src) == "def f(x): <NEW_LINE> <INDENT> return x + 1 <NEW_LINE> <DEDENT>"
    assert markers_to_source("def f(x): <NEW_LINE> <INDENT> return x + 1 <NEW_LINE> <DEDENT>") == \
        "def f(x):\n    return x + 1\n"
    nested = "if a:\n\tif b:\n\t\tc()\nd()"  # tabs; no final newline
    assert source_to_markers(nested) == \
        "if a: <NEW_LINE> <INDENT> if b: <NEW_LINE> <INDENT> c() <NEW_LINE> <DEDENT> <DEDENT> d() <NEW_LINE>"
    assert markers_to_source(source_to_markers(nested)) == "if a:\n    if b:\n        c()\nd()\n"


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_round_trip(name):
    src = textwrap.dedent(TRICKY[name]).lstrip("\n")
    equal, out = _roundtrip_equal(src)
    assert equal, out
    markers = source_to_markers(src)
    assert markers.count("<INDENT>") == markers.count("<DEDENT>") > 0
    assert source_to_markers(out) == markers  # a second pass is a fixed point


def test_comments_kept_or_dropped():
    markers = source_to_markers(textwrap.dedent(TRICKY["comments"]).lstrip("\n"))
    assert markers.startswith("# leading comment <NEW_LINE> def g(a, b): # trailing on def <NEW_LINE> ")
    assert "# comment-only line before the body <NEW_LINE> <INDENT> x = [1, 2] # trailing <NEW_LINE>" in markers
    assert "comment inside brackets" not in markers and "comment in a list" not in markers
    assert "return x # done <NEW_LINE> <DEDENT>" in markers


def test_strings_kept_verbatim():
    src = textwrap.dedent(TRICKY["multiline_strings"]).lstrip("\n")
    markers = source_to_markers(src)
    assert '"""Docstring.\n\n      indented line\ncolumn-zero line inside the string\n    """' in markers
    assert "'''a\nb''' + \"x\" 'y'" in markers
    literals = source_to_markers(textwrap.dedent(TRICKY["marker_literals"]).lstrip("\n"))
    assert markers_to_source(literals).splitlines()[1:3] == ['    a = "<NEW_LINE>"', "    b = '''<INDENT>"]


def test_indented_snippet_and_crlf():
    method = "    @property\n    def m(self):\n        return 1\n"
    body = "def m(self): <NEW_LINE> <INDENT> return 1 <NEW_LINE> <DEDENT>"
    assert source_to_markers(method) == "@property <NEW_LINE> " + body
    commented = "    # note\n    def m(self):\n        return 1\n"
    assert source_to_markers(commented) == "# note <NEW_LINE> " + body
    crlf = "def f():\r\n    x = '''a\r\nb'''\r\n    return x\r\n"
    equal, _ = _roundtrip_equal(crlf)
    assert equal


def test_markers_to_source_is_lenient():
    assert markers_to_source("") == ""
    assert markers_to_source("return 1") == "return 1\n"
    assert markers_to_source("x = 1 <NEW_LINE> <DEDENT> <DEDENT> y = 2 <NEW_LINE>") == "x = 1\ny = 2\n"
    assert markers_to_source("if a: <NEW_LINE> <INDENT> b = 'it''s' # don't <NEW_LINE> <DEDENT> c") == \
        "if a:\n    b = 'it''s' # don't\nc\n"
    # a model-style decode (one space everywhere) still gives runnable code
    text = "def add(a, b): <NEW_LINE> <INDENT> return a + b <NEW_LINE> <DEDENT> <eot>"
    ns = {}
    exec(markers_to_source(text.replace(" <eot>", "")), ns)
    assert ns["add"](2, 3) == 5


def test_errors():
    with pytest.raises(CodeFormatError, match="line 1: EOF in multi-line string"):
        source_to_markers('x = """never closed\n')
    with pytest.raises(CodeFormatError, match="line 3: unindent does not match any outer indentation level"):
        source_to_markers("if a:\n        b\n    c\n")
    with pytest.raises(CodeFormatError, match="EOF in multi-line statement"):
        source_to_markers("f(1,\n")
    with pytest.raises(TypeError):
        source_to_markers(b"x = 1")
    with pytest.raises(TypeError):
        markers_to_source(None)


def test_stdlib_sample_round_trip():
    stdlib = sysconfig.get_paths()["stdlib"]
    total = ok = 0
    for name in ("textwrap.py", "json/decoder.py", "ast.py"):
        path = os.path.join(stdlib, name)
        with open(path, encoding="utf-8") as f:
            src = f.read()
        lines = src.splitlines(keepends=True)
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                out = markers_to_source(source_to_markers("".join(lines[start - 1:node.end_lineno])))
                total += 1
                ok += ast.dump(ast.parse(out).body[0]) == ast.dump(node)
    assert total > 150
    assert ok == total


def _functions(path):
    with open(path, encoding="utf-8") as f:
        src = f.read()
    lines = src.splitlines(keepends=True)
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield "".join(lines[node.lineno - 1:node.end_lineno])


def test_fast_scanner_equals_tokenize_on_stdlib_sample():
    stdlib = sysconfig.get_paths()["stdlib"]
    total = fast = 0
    for name in ("textwrap.py", "json/decoder.py", "ast.py", "tokenize.py", "re/_parser.py", "argparse.py"):
        for src in _functions(os.path.join(stdlib, name)):
            total += 1
            markers = codefmt._markers_fast(src)
            if markers is not None:
                fast += 1
                assert markers == codefmt._markers_via_tokenize(src), src
    assert total > 300 and fast >= 0.98 * total  # nearly all take the fast path


@pytest.mark.parametrize("src", [
    "def f():\n\tif x:\n\t\treturn 1\n",  # tabs in indentation
    "def f():\r\n    return 1\r\n",  # CRLF
    "def f():\n    return 1",  # no final newline
    "def f():\n    x = '''open\n",  # unterminated triple-quoted string ('' then ' must not be read as strings)
    "def f():\n    x = a''''b\n",
    "def f():\n    return a $ b\n",  # an ERRORTOKEN for tokenize
    "def f():\n   \\\n    return 1\n",  # a continuation before any token: Python measures the indent there
    "def f():\n    return (1]\n    )\n",
    "def f():\n        x\n    y\n",  # dedent to an unknown level
    "def f():\n    return 1 \\ 2\n",
    "def f():\n    return x\u00a0+ 1\n",
])
def test_fast_scanner_leaves_unusual_source_to_tokenize(src):
    assert codefmt._markers_fast(src) is None
    try:
        expected = codefmt._markers_via_tokenize(src)
    except CodeFormatError as exc:
        with pytest.raises(CodeFormatError, match=re.escape(str(exc))):
            source_to_markers(src)
    else:
        assert source_to_markers(src) == expected


def test_fast_scanner_agrees_with_tokenize_on_mutated_source():
    """Random edits (quotes, brackets, backslashes, tabs, comments, line breaks) of the tricky snippets: whenever
    the fast scanner answers, `tokenize` gives the same text; when `tokenize` fails, the fast scanner declines."""
    rng = random.Random(0)
    seeds = [textwrap.dedent(src) for src in TRICKY.values()]
    alphabet = ["'", '"', "(", ")", "[", "]", "{", "}", "\\", "\n", " ", "\t", "#", "x", ":", "\f", "'''", '"""',
                "\\\n", "    ", "$"]
    answered = 0
    for _ in range(3000):
        src = rng.choice(seeds)
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(src) + 1)
            if rng.random() < 0.6:
                src = src[:k] + rng.choice(alphabet) + src[k:]
            else:
                src = src[:k] + src[k + rng.randint(1, 3):]
        fast = codefmt._markers_fast(src)
        if fast is None:
            continue
        answered += 1
        assert fast == codefmt._markers_via_tokenize(src), repr(src)
    assert answered > 500
