"""The miner on a tiny synthetic tree: file filters, extraction, dedup, decontamination, summary and CLI."""
import ast
import json
import os
import textwrap

import pytest

from pangu_codeclm.codefmt import source_to_markers
from pangu_codeclm.data import mine as miner
from pangu_codeclm.data.decontaminate import Decontaminator, load_benchmarks
from pangu_codeclm.data.records import read_records

GOOD = '''\
import os


def add(a, b):
    """Add two numbers."""
    # a comment
    return a + b


class K:
    def method(self, x):
        \'\'\'Return x twice.

        More text.
        \'\'\'
        s = """keep
   this string"""
        return x * 2

    def only_doc(self):
        """Nothing else."""


def nodoc():
    return 1


async def fetch(url):
    """Fetch url."""
    return await get(url)
'''

DUP = '''\
def add(a,b):
    """Add two numbers, again."""
    # a comment
    return a+b
'''


def _with_docstring(code, name, doc):
    """Insert `doc` as the docstring of function `name` in `code` (indented like its first statement)."""
    lines = code.split("\n")
    node = next(n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef) and n.name == name)
    first = lines[node.body[0].lineno - 1]
    indent = first[:len(first) - len(first.lstrip())]
    lines.insert(node.body[0].lineno - 1, f'{indent}"""{doc}"""')
    return "\n".join(lines)


def _tree(problems):
    os.makedirs("src/pkg/sub")
    files = {
        "src/pkg/good.py": GOOD,
        "src/pkg/sub/dup.py": DUP,
        "src/pkg/py2.py": 'def f():\n    """Doc."""\n    print "hello"\n',
        "src/pkg/long_line.py": 'def f():\n    """Doc."""\n    return "' + "x" * 1000 + '"\n',
        "src/pkg/wide.py": "".join(f'v{i} = "{"y" * 120}"\n' for i in range(5)),
        "src/pkg/empty.py": "",
        "src/pkg/plain.py": "def f(x):\n    # no docstring here\n    return x\n",
    }
    he = {p["task_id"]: p for p in problems if p["dataset"] == "humaneval"}
    mb = {p["task_id"]: p for p in problems if p["dataset"] == "mbpp"}
    # HumanEval/0 verbatim (prompt + solution): its body matches
    contam = he["HumanEval/0"]["prompt"] + he["HumanEval/0"]["canonical_solution"]
    # an MBPP problem's text as the docstring of unrelated code
    contam += f'\n\ndef unrelated(q):\n    """{mb["MBPP/2"]["text"]}"""\n    return sorted(set(q))[::-1]\n'
    # MBPP/1's solution with one identifier renamed (the AST differs; the 5-gram Jaccard stays ≥ 0.8)
    near = _with_docstring(mb["MBPP/1"]["code"].replace("return tc[m][n]", "return tc[m][n] + 0"),
                           "min_cost", "Cheapest path through a grid.")
    files["src/pkg/contam.py"] = contam + "\n\n" + near + "\n"
    for path, text in files.items():
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    with open("src/pkg/big.py", "w") as f:
        f.write(("# " + "z" * 60 + "\n") * (1_000_000 // 63 + 1))
    with open("src/pkg/latin.py", "wb") as f:
        f.write(b'def f():\n    """Caf\xe9."""\n    return 1\n')
    with open("src/pkg/notes.txt", "w") as f:
        f.write("not python")


@pytest.fixture(scope="module")
def benchmarks(mbpp_path):
    return load_benchmarks(mbpp_path)


def test_mine_tree(benchmarks, mbpp_path):
    problems, used = benchmarks
    _tree(problems)
    summary = miner.mine(["src"], "m.jsonl", workers=1, mbpp_path=mbpp_path, progress=False)
    assert summary["files_found"] == 10  # every .py, nothing else
    assert summary["files_skipped"] == {"file >= 1 MB": 1, "line >= 1000 chars": 1, "mean line length >= 100": 1,
                                        "not Python 3": 1, "cannot decode": 1, "empty": 1,
                                        "no docstring candidate (not parsed)": 1}
    assert summary["files_read"] == 3
    assert summary["decontamination"]["humaneval"]["problems"] == 164
    assert summary["decontamination"]["mbpp"] == {"problems": 974, "path": str(mbpp_path)}
    assert summary["pairs_dropped"] == {
        "body is only a docstring": 1, "exact duplicate": 1, "contaminated (humaneval, body)": 1,
        "contaminated (mbpp, docstring)": 1, "contaminated (mbpp, code-jaccard)": 1}
    assert summary["contaminated"] == 3
    records = read_records("m.jsonl")
    assert summary["pairs_kept"] == len(records) == 3
    by_doc = {r["docstring"]: r for r in records}
    assert list(by_doc) == ["Add two numbers.", "Return x twice.\n\nMore text.", "Fetch url."]
    assert by_doc["Add two numbers."]["code"] == source_to_markers(
        "def add(a, b):\n    # a comment\n    return a + b\n")
    assert "# a comment" in by_doc["Add two numbers."]["code"] and "Add two" not in by_doc["Add two numbers."]["code"]
    method = by_doc["Return x twice.\n\nMore text."]["code"]
    assert "More text" not in method and '"""keep\n   this string"""' in method
    assert method == source_to_markers(
        '    def method(self, x):\n        s = """keep\n   this string"""\n        return x * 2\n')
    assert len({r["_id"] for r in records}) == 3

    # two workers give the same file, and decontamination can be switched off
    summary2 = miner.mine(["src"], "m2.jsonl", workers=2, mbpp_path=mbpp_path, progress=False)
    assert read_records("m2.jsonl") == records and summary2["pairs_dropped"] == summary["pairs_dropped"]
    off = miner.mine(["src/pkg/contam.py"], "off.jsonl", workers=1, decontaminate=False, progress=False)
    assert off["pairs_kept"] == 3 and off["decontamination"] == {} and off["contaminated"] == 0


def test_mine_cli(benchmarks, mbpp_path, capsys):
    from pangu_codeclm.cli import main

    os.makedirs("t")
    with open("t/a.py", "w") as f:
        f.write(GOOD)
    assert main(["mine", "t", "--out", "o.parquet", "--workers", "2", "--mbpp-path", str(mbpp_path),
                 "--summary", "s.json", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "pairs kept: 3" in out and "dropped (body is only a docstring): 1" in out
    assert "decontaminated against: humaneval (164 problems" in out and "mbpp (974 problems" in out
    assert json.load(open("s.json"))["pairs_kept"] == len(read_records("o.parquet")) == 3
    assert main(["mine", "missing_dir", "--out", "x.jsonl", "--no-decontaminate", "--quiet"]) == 1
    assert "error: source not found: missing_dir" in capsys.readouterr().err
    assert main(["mine", "t", "--out", "x.csv", "--no-decontaminate", "--quiet"]) == 1
    assert "expected a name ending in .jsonl, .jsonl.gz or .parquet" in capsys.readouterr().err
    assert main(["mine", "t", "--out", "x.jsonl", "--mbpp-path", "no/mbpp.jsonl", "--quiet"]) == 1
    assert "MBPP file not found: no/mbpp.jsonl" in capsys.readouterr().err
    assert not os.path.exists("x.jsonl") and not os.path.exists("x.csv")


def test_jaccard_threshold_is_exact():
    code = " ".join(f"t{i}" for i in range(24))  # 20 distinct 5-grams
    dec = Decontaminator([{"dataset": "toy", "task_id": "toy/1", "text": "", "code": code}])
    assert dec.check("", " ".join(f"t{i}" for i in range(20))).kind == "code-jaccard"  # 16/20 = 0.8
    assert dec.check("", " ".join(f"t{i}" for i in range(19))) is None  # 15/20 = 0.75
    assert dec.check("", code + " t99").kind == "code-jaccard"  # 20/21
    text = "one two three four five six seven eight nine ten"
    dec = Decontaminator([{"dataset": "toy", "task_id": "toy/2", "text": text, "code": "pass"}])
    assert dec.check("One, two. Three four five six seven eight nine TEN!", "x = 1").kind == "docstring"
    assert dec.check(text + " eleven", "x = 1").kind == "doc-jaccard"  # 6/7
    assert dec.check("one two three four five six", "x = 1") is None  # 2/6


def test_default_sources_and_extraction_edge_cases():
    assert any(os.path.isfile(os.path.join(src, "os.py")) for src in miner.default_sources())
    src = textwrap.dedent('''\
        def a(): "inline doc"; return 1
        def b():
            """doc"""; x = 1
            return x
        def c():
            """   """
            return 2
        def d():
            """Ends with <eot> here."""
            return 3
        def e():
            """Fine."""
            return "<NEW_LINE>"
        def f():
            """Fine <python too>."""
            return "<INDENT"
        ''')
    src += '\x0c\ndef g():\n    """Form feed above, line separator in a string."""\n    return "a\u2028b"\n'
    res = miner.mine_source(src, "edge.py")
    assert [doc for _, doc, _ in res.pairs] == ["Fine <python too>.", "Form feed above, line separator in a string."]
    assert res.pairs[1][2] == source_to_markers('def g():\n    return "a\u2028b"\n')
    assert res.dropped == {"docstring on the def line": 1, "docstring shares a line with code": 1,
                           "contains a special-token string": 2}


def test_missing_mbpp_is_reported_not_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("PANGU_CODECLM_CACHE", str(tmp_path / "empty_cache"))
    problems, used = load_benchmarks(None)
    assert used["mbpp"] == {"problems": 0, "path": None, "note": "not found; pass --mbpp-path"}
    assert used["humaneval"]["problems"] == 164 == len(problems)
    with pytest.raises(FileNotFoundError, match="MBPP file not found: nowhere.jsonl"):
        load_benchmarks("nowhere.jsonl")


def test_body_match_ignores_formatting_but_not_structure():
    ref = "def f(xs):\n    total = 0\n    for x in xs:\n        total += x * 2\n    return total\n"
    dec = Decontaminator([{"dataset": "toy", "task_id": "toy/3", "text": "", "code": ref}])

    def check(code):
        node = ast.parse(code).body[0]
        return dec.check("Something else entirely.", code, node)

    reformatted = ("def g(values):\n    total = (0)  # start\n    for x in xs:\n\n        total += (x *\n"
                   "                  2)\n    return total\n")
    hit = check(reformatted)
    assert hit is not None and hit.kind == "body" and hit.task_id == "toy/3"
    for changed in ("x * 3", "(x, 2)", "x * 2 + 0"):  # another constant; another node type below the statement
        assert getattr(check(ref.replace("x * 2", changed)), "kind", None) != "body", changed


def test_collector_paused_restores_the_callers_setting():
    import gc

    assert gc.isenabled()
    with miner.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with miner.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()
    with pytest.raises(ValueError), miner.collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_deeply_nested_body_does_not_stop_the_miner(benchmarks, tmp_path):
    """A body whose top matches an indexed benchmark shape but is nested too deep for `ast.dump` (a long `a + a + …`
    chain) is compared by the other checks instead of crashing the run."""
    problems, _ = benchmarks
    dec = Decontaminator(problems)
    src = ('def f(a, b):\n    """Average of many values."""\n    return (a\n' + "            + a\n" * 2000
           + "    ) / 2\n")
    path = tmp_path / "deep.py"
    path.write_text(src, encoding="utf-8")
    result = miner.mine_file(str(path), dec)
    assert result.skipped is None and len(result.pairs) == 1 and not result.dropped


def test_body_with_an_unprintable_int_gets_no_body_match():
    ref = "def f(x):\n    y = x * 3 + 1\n    return y\n"
    dec = Decontaminator([{"dataset": "toy", "task_id": "toy/4", "text": "", "code": ref}])
    code = "def g(x):\n    y = x * 0x" + "f" * 5000 + " + 1\n    return y\n"  # ast.dump cannot print it
    assert dec.check("Some unrelated words here.", code, ast.parse(code).body[0]) is None
    assert dec.check("Some unrelated words here.", ref, ast.parse(ref).body[0]).kind == "body"


def test_a_file_the_miner_fails_on_is_counted_not_fatal(monkeypatch, tmp_path, caplog):
    (tmp_path / "a.py").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.py").write_text(GOOD.replace("def add", "def boom"), encoding="utf-8")
    real = miner.mine_source

    def flaky(text, path, decontaminator=None):
        if path.endswith("b.py"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(text, path, decontaminator)

    monkeypatch.setattr(miner, "mine_source", flaky)
    summary = miner.mine([str(tmp_path)], str(tmp_path / "out.jsonl"), decontaminate=False, progress=False)
    assert summary["files_skipped"] == {"miner error (RecursionError)": 1}
    assert summary["files_read"] == 1 and summary["pairs_kept"] == 3
    assert "b.py: skipped, the miner failed on it: RecursionError" in caplog.text
