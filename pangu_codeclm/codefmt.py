"""Python source ⇄ marker text (` <NEW_LINE> `, ` <INDENT> `, ` <DEDENT> `), the code format of the records.

`source_to_markers` runs the `tokenize` module: each logical line becomes its tokens followed by `<NEW_LINE>`, and
`<INDENT>` / `<DEDENT>` appear where Python emits INDENT / DEDENT; items are joined by single spaces, e.g.
`def f(x): <NEW_LINE> <INDENT> return x <NEW_LINE> <DEDENT>`. Strings (including multi-line ones, verbatim, with their
newlines) and comments are kept. `markers_to_source` turns such text (or decoded model output) back into Python with
4-space indents.

What the round trip loses (none of it changes `ast.dump`; benchmarks/codefmt_roundtrip.py measures the rate):
- blank lines; the original indentation width and tabs (every level becomes 4 spaces);
- whitespace between tokens (any run becomes one space; adjacent tokens stay adjacent);
- line continuations: a logical line spanning several physical lines (brackets or backslash) becomes one line;
- comments inside a continued logical line (they would swallow the code after them) are dropped; a comment-only
  line is kept as its own line, indented at the level where Python reports it;
- a comment that contains a literal marker string is cut at that marker (markers inside strings are safe);
- the indentation of a snippet whose first line is indented (a method) is removed.
"""
import io
import re
import tokenize

NEW_LINE, INDENT, DEDENT = "<NEW_LINE>", "<INDENT>", "<DEDENT>"
INDENT_UNIT = " " * 4

_FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python ≥ 3.12 splits f-strings into several tokens
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)


class CodeFormatError(ValueError):
    """Source that `tokenize` rejects; the message gives the line and the reason."""


def _slice(lines, start, end):
    """Source text between two (row, col) positions of `tokenize` (rows 1-based)."""
    (r1, c1), (r2, c2) = start, end
    if r1 == r2:
        return lines[r1 - 1][c1:c2]
    return lines[r1 - 1][c1:] + "".join(lines[r1:r2 - 1]) + lines[r2 - 1][:c2]


def _render(items):
    """One logical line from its (text, start, end) tokens: adjacent tokens stay adjacent, any gap is one space."""
    out = [items[0][0]]
    for (_, _, prev_end), (text, start, _) in zip(items, items[1:]):
        if start != prev_end:
            out.append(" ")
        out.append(text)
    return "".join(out)


def _tokens(src):
    try:
        return list(tokenize.generate_tokens(io.StringIO(src).readline))
    except tokenize.TokenError as exc:
        msg, (row, _) = exc.args
        raise CodeFormatError(f"cannot tokenize source at line {row}: {msg}") from None
    except SyntaxError as exc:  # IndentationError / TabError too
        raise CodeFormatError(f"cannot tokenize source at line {exc.lineno}: {exc.msg}") from None


def source_to_markers(src):
    """Marker text of Python source `src` (see the module docstring); CodeFormatError if it cannot be tokenized."""
    if not isinstance(src, str):
        raise TypeError(f"source_to_markers expects a str, got {type(src).__name__}")
    toks = _tokens(src)
    lines = io.StringIO(src).readlines()
    out, cur = [], []
    depth, base_indent, fstring, code_seen = 0, False, 0, False
    for k, tok in enumerate(toks):
        kind = tok.type
        if fstring:  # inside a (3.12+) f-string: everything up to its end is taken verbatim
            if kind == _FSTRING_START:
                fstring += 1
            elif kind == _FSTRING_END:
                fstring -= 1
                if not fstring:
                    start = cur[-1][1]
                    cur[-1] = (_slice(lines, start, tok.end), start, tok.end)
            continue
        if kind in (tokenize.ENCODING, tokenize.ENDMARKER, tokenize.NL):
            continue
        if kind == tokenize.NEWLINE:
            if cur:
                out += [_render(cur), NEW_LINE]
                cur, code_seen = [], True
        elif kind == tokenize.INDENT:
            depth += 1
            if depth == 1 and not code_seen:  # the snippet itself is indented (e.g. a method): drop that level
                base_indent = True
            else:
                out.append(INDENT)
        elif kind == tokenize.DEDENT:
            depth -= 1
            if not (base_indent and depth == 0):
                out.append(DEDENT)
        elif kind == tokenize.COMMENT:
            following = toks[k + 1].type if k + 1 < len(toks) else tokenize.ENDMARKER
            if not cur:  # comment-only line
                out += [tok.string, NEW_LINE]
            elif following == tokenize.NEWLINE:  # trailing comment of a logical line
                cur.append((tok.string, tok.start, tok.end))
            # else: a comment inside a continued logical line is dropped
        else:
            cur.append((tok.string, tok.start, tok.end))
            if kind == _FSTRING_START:
                fstring = 1
    if cur:  # source without a final NEWLINE token
        out += [_render(cur), NEW_LINE]
    return " ".join(out)


_SCAN = re.compile(r"""
    (?P<marker><NEW_LINE>|<INDENT>|<DEDENT>)
  | (?P<string>'''(?:\\[\s\S]|[^\\])*?'''|\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"
               |'(?:\\[\s\S]|[^'\\\n])*'|"(?:\\[\s\S]|[^"\\\n])*")
  | (?P<comment>\#.*?(?=<NEW_LINE>|<INDENT>|<DEDENT>|\n|$))
  | (?P<other>[^<'"\#]+|[\s\S])
""", re.VERBOSE)


def markers_to_source(text):
    """Python source from marker text: one line per `<NEW_LINE>`, 4 spaces per `<INDENT>` level.

    Markers inside string literals are left alone. Extra `<DEDENT>`s (possible in generated text) stop at level 0.
    """
    if not isinstance(text, str):
        raise TypeError(f"markers_to_source expects a str, got {type(text).__name__}")
    lines, cur = [], []
    level = 0

    def flush():
        content = "".join(cur).strip()
        if content:
            lines.append(INDENT_UNIT * level + content)
        cur.clear()

    for match in _SCAN.finditer(text):
        marker = match.group("marker")
        if marker is None:
            cur.append(match.group())
            continue
        flush()
        if marker == INDENT:
            level += 1
        elif marker == DEDENT:
            level = max(0, level - 1)
    flush()
    return "\n".join(lines) + "\n" if lines else ""
