"""Round-trip rate of pangu_codeclm.codefmt on every function of this machine's standard library.

For each FunctionDef/AsyncFunctionDef (decorators included) in the stdlib's .py files (site-packages excluded):
source → source_to_markers → markers_to_source → ast.parse; success when `ast.dump` of the first parsed statement
equals `ast.dump` of the original node. Printed beside it: the same marker text decoded the way the reference's
generation script post-processes output (split on <NEW_LINE>, one level per line containing <INDENT>, minus one per
<DEDENT>, markers in strings not protected). Target: ≥ 99.5%. With a SentencePiece model (default: the released
PanGu vocab under ../shared/data/pangu) a third line sends the marker text through the tokenizer as well
(`decode(encode_code(markers))`, partial separation with ../shared's python_tokens.txt), which shows what the
model's view of the code loses (whitespace inside strings, characters outside the vocabulary, identifiers split by an
added token such as `rindex` in `curindex`).

    python benchmarks/codefmt_roundtrip.py [--root DIR] [--jobs 2] [--max-files N] [--vocab PATH | --vocab '']
"""
import argparse
import ast
import collections
import multiprocessing
import os
import re
import sys
import sysconfig
import time

from tqdm import tqdm

from pangu_codeclm import codefmt
from pangu_codeclm.codefmt import CodeFormatError, markers_to_source, source_to_markers

TARGET = 0.995
DEFAULT_VOCAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "pangu",
                             "vocab.model")
_TOKENIZER = None


def _init_worker(vocab, tokens_file):
    global _TOKENIZER
    if vocab:
        from pangu_codeclm.tokenization.pangu import PanguTokenizer
        _TOKENIZER = PanguTokenizer.from_vocab(vocab, "partial", tokens_file or None)


def reference_style_decode(text, indent="    "):
    """Marker text → source as the reference's generation post-processing does it (the baseline)."""
    level, out = 0, []
    for line in text.split("<NEW_LINE>"):
        if "<INDENT>" in line:
            level += 1
        level -= len(re.findall(r"<DEDENT>", line))
        line = line.replace("<INDENT>", "").replace("<DEDENT>", "")
        out.append(indent * level + line.strip())
    return "\n".join(out)


def _check(decoded, want):
    try:
        tree = ast.parse(decoded)
    except SyntaxError as exc:
        return f"parse error: {exc.msg}"
    if not tree.body or ast.dump(tree.body[0]) != want:
        return "ast differs"
    return None


def compare_scanners(segment):
    """(fast-path status, seconds of the fast scanner, seconds of `tokenize`) for one source."""
    t0 = time.perf_counter()
    fast = codefmt._markers_fast(segment)
    t1 = time.perf_counter()
    try:
        slow = codefmt._markers_via_tokenize(segment)
    except CodeFormatError:
        slow = None
    t2 = time.perf_counter()
    status = "fallback" if fast is None else "equal" if fast == slow else "DIFFERENT"
    return status, t1 - t0, t2 - t1


def check_file(path):
    """([(where, ours, baseline, through-tokenizer, fast-path status)] failures (None = ok), scanner seconds) for
    every function in one file; None if the file is not Python 3."""
    try:
        with open(path, encoding="utf-8") as f:
            src = f.read()
        module = ast.parse(src)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return None
    lines = src.splitlines(keepends=True)
    results, seconds = [], [0.0, 0.0]
    for node in ast.walk(module):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        segment = "".join(lines[start - 1:node.end_lineno])
        want = ast.dump(node)
        where = f"{path}:{start}"
        status, fast_s, slow_s = compare_scanners(segment)
        seconds[0] += fast_s
        seconds[1] += slow_s
        try:
            markers = source_to_markers(segment)
        except CodeFormatError as exc:
            results.append((where, f"tokenize error: {exc}", "tokenize error", "tokenize error", status))
            continue
        via = None
        if _TOKENIZER is not None:
            via = _check(markers_to_source(_TOKENIZER.decode(_TOKENIZER.encode_code(markers))), want)
        results.append((where, _check(markers_to_source(markers), want), _check(reference_style_decode(markers), want),
                        via, status))
    return results, seconds


def stdlib_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__"))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=sysconfig.get_paths()["stdlib"], help="source tree (default: the stdlib)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--max-files", type=int, default=0, help="only the first N files (0: all)")
    parser.add_argument("--examples", type=int, default=3, help="failures to show per category")
    parser.add_argument("--vocab", default=DEFAULT_VOCAB if os.path.exists(DEFAULT_VOCAB) else "",
                        help="SentencePiece model for the through-tokenizer line (partial separation); '' to skip")
    shared_list = os.path.join(os.path.dirname(DEFAULT_VOCAB), "python_tokens.txt")
    parser.add_argument("--tokens-file", default=shared_list if os.path.exists(shared_list) else "",
                        help="partial separation token list ('' = derived from Python)")
    args = parser.parse_args(argv)

    files = list(stdlib_files(args.root))
    if args.max_files:
        files = files[:args.max_files]
    t0 = time.perf_counter()
    ours, base, via = collections.Counter(), collections.Counter(), collections.Counter()
    examples = collections.defaultdict(list)
    total, unparsable = 0, 0
    scanner, scanner_seconds = collections.Counter(), [0.0, 0.0]
    with multiprocessing.Pool(args.jobs, initializer=_init_worker, initargs=(args.vocab, args.tokens_file)) as pool:
        for res in tqdm(pool.imap(check_file, files, chunksize=8), total=len(files), unit="file", desc="round trip"):
            if res is None:
                unparsable += 1
                continue
            res, seconds = res
            scanner_seconds = [a + b for a, b in zip(scanner_seconds, seconds)]
            for where, fail, base_fail, via_fail, status in res:
                total += 1
                scanner[status] += 1
                if status == "DIFFERENT" and len(examples[status]) < args.examples:
                    examples[status].append(where)
                if fail:
                    category = fail.split(" (")[0] if fail.startswith("parse") else fail.split(":")[0]
                    ours[category] += 1
                    if len(examples[category]) < args.examples:
                        examples[category].append(f"{where}: {fail}")
                if base_fail:
                    base["parse error" if base_fail.startswith("parse") else base_fail] += 1
                if via_fail:
                    via["parse error" if via_fail.startswith("parse") else via_fail] += 1
    elapsed = time.perf_counter() - t0
    ok, base_ok = total - sum(ours.values()), total - sum(base.values())
    print(f"root: {args.root}; {len(files)} files ({unparsable} not Python 3 / unreadable, skipped); "
          f"{total} functions; {elapsed:.1f} s with {args.jobs} processes")
    print(f"{'decoder':<34}{'ast-equal':>12}{'rate':>10}")
    print(f"{'codefmt (ours)':<34}{ok:>12}{ok / max(total, 1):>10.4%}")
    print(f"{'reference-style post-processing':<34}{base_ok:>12}{base_ok / max(total, 1):>10.4%}")
    if args.vocab:
        via_ok = total - sum(via.values())
        tokens = os.path.normpath(args.tokens_file) if args.tokens_file else "derived from Python"
        print(f"{'ours through the tokenizer':<34}{via_ok:>12}{via_ok / max(total, 1):>10.4%}   "
              f"({os.path.normpath(args.vocab)}, partial: {tokens})")
    print(f"target: ≥ {TARGET:.1%} -> {'met' if ok >= TARGET * total else 'NOT met'}")
    fast_s, slow_s = scanner_seconds
    print(f"source_to_markers: fast scanner answered {total - scanner['fallback']} of {total} "
          f"({scanner['fallback']} left to tokenize), equal to the tokenize path in "
          f"{scanner['equal']}, different in {scanner['DIFFERENT']} {examples['DIFFERENT']}; "
          f"{fast_s:.2f} s vs tokenize {slow_s:.2f} s ({slow_s / max(fast_s, 1e-9):.1f}x)")
    if ours:
        print("our failures by category:")
        for category, count in ours.most_common():
            print(f"  {count:6d}  {category}")
            for example in examples[category]:
                print(f"          e.g. {example}")
    if base:
        print("baseline failures by category: " + ", ".join(f"{c} {n}" for c, n in base.most_common()))
    if via:
        print("through-tokenizer failures by category: " + ", ".join(f"{c} {n}" for c, n in via.most_common()))
    return 0 if ok >= TARGET * total and not scanner["DIFFERENT"] else 1


if __name__ == "__main__":
    sys.exit(main())
