"""Python source ⇄ marker text (` <NEW_LINE> `, ` <INDENT> `, ` <DEDENT> `), the code format of the records.

`source_to_markers` follows the `tokenize` module: each logical line becomes its tokens followed by `<NEW_LINE>`, and
`<INDENT>` / `<DEDENT>` appear where Python emits INDENT / DEDENT; items are joined by single spaces, e.g.
`def f(x): <NEW_LINE> <INDENT> return x <NEW_LINE> <DEDENT>`. Strings (including multi-line ones, verbatim, with their
newlines) and comments are kept. `markers_to_source` turns such text (or decoded model output) back into Python with
4-space indents.

`tokenize` is pure Python in 3.11 and was most of the miner's time, so ordinary source goes through a scanner that
only finds strings and comments with one regex and treats the code between them in bulk (4x faster); source it does
not handle (tabs in indentation, CR line ends, no final newline, characters Python rejects, anything it cannot tell
from a syntax error) goes through `tokenize`. Both give the same text: benchmarks/codefmt_roundtrip.py compares them on
every stdlib function and tests compare them on random edits of tricky code.

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
    """Marker text of Python source `src` (see the module docstring); CodeFormatError if it cannot be tokenized.

    Ordinary source takes a fast scanner (`_markers_fast`); whatever it does not handle goes through `tokenize`. Both
    give the same text (tests and benchmarks/codefmt_roundtrip.py compare them on the whole stdlib).
    """
    if not isinstance(src, str):
        raise TypeError(f"source_to_markers expects a str, got {type(src).__name__}")
    markers = _markers_fast(src) if _FSTRING_START is None else None  # 3.12+ f-strings may nest their own quotes
    return markers if markers is not None else _markers_via_tokenize(src)


def _markers_via_tokenize(src):
    """The general converter, driven by the `tokenize` module (pure Python in 3.11, hence slow)."""
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


# Strings (any prefix stays glued to them as plain code) and comments; what lies between is plain code, where only
# whitespace, brackets, line ends and backslash continuations matter. Three quotes always open a triple-quoted string
# (as in Python): an unterminated one leaves a quote in the plain code, which sends the source to `tokenize`.
_STRING_OR_COMMENT = re.compile(r"""
    (?P<string>\'\'\'[^'\\]*(?:(?:\\[\s\S]|'(?!''))[^'\\]*)*\'\'\'
              |\"\"\"[^"\\]*(?:(?:\\[\s\S]|"(?!""))[^"\\]*)*\"\"\"
              |'(?!'')[^'\\\n]*(?:\\[\s\S][^'\\\n]*)*'
              |"(?!"")[^"\\\n]*(?:\\[\s\S][^"\\\n]*)*")
  | (?P<comment>\#[^\n]*)
""", re.VERBOSE)
# text the fast scanner leaves to `tokenize`: null bytes, carriage returns and whitespace that Python does not
# treat as such
_UNUSUAL = re.compile("[\x00\r\x0b\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
# characters `tokenize` reports as ERRORTOKEN outside strings (it then keeps the whitespace around them)
_INVALID_CODE = re.compile(r"[$?`]|!(?!=)")
_OPENERS, _CLOSERS = "([{", ")]}"


class _Unsupported(Exception):
    """Raised inside the fast scanner: the source goes to the `tokenize` path."""


class _LineBuilder:
    """State of the fast scanner: the marker items so far and the logical line being built."""

    def __init__(self):
        self.out, self.cur = [], []
        self.gap = False  # whitespace (or a line break inside a continued line) since the last token
        self.depth = 0  # bracket depth
        self.continued = False  # the physical line ended with a backslash
        self.line_indent = ""  # leading whitespace of the current physical line
        self.at_line_start = True  # nothing but whitespace yet on this physical line
        self.stack, self.base_indent, self.code_seen = [0], False, False

    def token(self, text):
        """Append a token (or a run of adjacent tokens) to the logical line, opening it if needed."""
        if not self.cur:
            self._indent()
        elif self.gap:
            self.cur.append(" ")
        self.cur.append(text)
        self.gap = self.at_line_start = False

    def _indent(self):
        indent = self.line_indent
        if indent.strip(" "):
            raise _Unsupported("tab or form feed in indentation")
        col, stack = len(indent), self.stack
        if col > stack[-1]:
            stack.append(col)
            if len(stack) == 2 and not self.code_seen:  # the snippet itself is indented (a method): drop that level
                self.base_indent = True
            else:
                self.out.append(INDENT)
        while col < stack[-1]:
            stack.pop()
            if not (self.base_indent and len(stack) == 1):
                self.out.append(DEDENT)
        if col != stack[-1]:
            raise _Unsupported("dedent to an unknown level")

    def code(self, text):
        """Plain code (no strings, no comments), possibly spanning lines."""
        if not text.isascii() and not all(word.isidentifier() or word.isascii() for word in text.split()) \
                or _INVALID_CODE.search(text):
            raise _Unsupported("characters Python does not accept outside strings")
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if i:
                self.newline()
            if not line:
                continue
            continued = "\\" in line
            if continued:  # only a line continuation: the last character before a line break
                if i == len(lines) - 1 or not line.endswith("\\") or "\\" in line[:-1]:
                    raise _Unsupported("backslash outside a string")
                line = line[:-1]
            if "'" in line or '"' in line:
                raise _Unsupported("unterminated string")
            words = line.split()
            if self.at_line_start:
                stripped = line.lstrip()
                self.line_indent += line[:len(line) - len(stripped)]
            if words:
                if line[0] in " \t\f":
                    self.gap = True
                self.token(" ".join(words))
                if line[-1] in " \t\f":
                    self.gap = True
                for ch in _OPENERS:
                    self.depth += line.count(ch)
                for ch in _CLOSERS:
                    self.depth -= line.count(ch)
                if self.depth < 0:
                    raise _Unsupported("unbalanced brackets")
            elif self.cur:
                self.gap = True
            if continued:
                if not self.cur:  # Python would measure the indentation on this line
                    raise _Unsupported("continuation before any token")
                self.continued = self.gap = True

    def comment(self, text):
        if not self.cur:  # comment-only line
            self.out += [text, NEW_LINE]
        elif self.depth == 0 and not self.continued:  # trailing comment of a logical line
            self.token(text)
        else:  # inside a continued logical line: dropped
            self.gap = True

    def newline(self):
        if self.continued:
            self.continued = False
            self.gap = True
        elif self.depth:
            self.gap = True
        elif self.cur:
            self.out += ["".join(self.cur), NEW_LINE]
            self.cur, self.gap, self.code_seen = [], False, True
        self.line_indent, self.at_line_start = "", True

    def finish(self):
        if self.cur or self.depth or self.continued:
            raise _Unsupported("source ends inside a logical line")
        for depth in range(len(self.stack) - 2, -1, -1):
            if not (self.base_indent and depth == 0):
                self.out.append(DEDENT)
        return " ".join(self.out)


def _markers_fast(src):
    """Marker text of ordinary source, or None when `src` needs the `tokenize` path (no final newline, tabs in
    indentation, carriage returns, unusual whitespace, anything it cannot tell apart from a syntax error)."""
    if not src.endswith("\n") or _UNUSUAL.search(src):
        return None
    builder, pos = _LineBuilder(), 0
    try:
        for match in _STRING_OR_COMMENT.finditer(src):
            if match.start() > pos:
                builder.code(src[pos:match.start()])
            if match.lastgroup == "string":
                builder.token(match.group())
            else:
                builder.comment(match.group())
            pos = match.end()
        builder.code(src[pos:])
        return builder.finish()
    except _Unsupported:
        return None


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
