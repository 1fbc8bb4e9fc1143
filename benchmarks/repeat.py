#!/usr/bin/env python3
"""Run a benchmark N times (one after another, alone) and print every figure as median [min–max] over the runs.

Lines of the runs are matched by their text with the numbers taken out, so a line such as
`train step tokens/s (median of 5): MindSpore 428.0 | PyTorch 412.1 | ratio 1.04x` comes back once, each of its
numbers replaced by `median [min–max]`. Lines whose shape differs between runs are printed per run.

    python benchmarks/repeat.py --runs 3 -- python benchmarks/train_step.py
    python benchmarks/repeat.py --runs 3 --log runs/bench/train_step -- python benchmarks/train_step.py
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
VERDICT = re.compile(r"\b(?:NOT )?met\b")  # a target's verdict: `met` or `NOT met`


def shape(line):
    """The line with every number and verdict replaced by a placeholder and runs of spaces (column padding)
    collapsed."""
    return re.sub(r"\s+", " ", VERDICT.sub("<verdict>", NUMBER.sub("#", line))).strip()


def numbers(line):
    return [float(m.replace(",", "")) for m in NUMBER.findall(line)]


def _fmt(value, like):
    decimals = len(like.split(".")[1]) if "." in like and "e" not in like.lower() else 0
    text = f"{value:,.{decimals}f}" if "," in like else f"{value:.{decimals}f}"
    return "+" + text if like.startswith("+") and value >= 0 else text


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d")  # library log records, not figures


def _merge_line(rows):
    """One line from the same-shaped line of every run: varying numbers become median [min–max]."""
    first = rows[0]
    values = [numbers(line) for line in rows]
    parts, pos = [], 0
    for j, match in enumerate(NUMBER.finditer(first)):
        column = [v[j] for v in values]
        text = match.group(0)
        parts.append(first[pos:match.start()])
        if len(set(column)) == 1:
            parts.append(text)
        else:
            parts.append(f"{_fmt(statistics.median(column), text)} [{_fmt(min(column), text)}–"
                         f"{_fmt(max(column), text)}]")
        pos = match.end()
    merged = "".join(parts) + first[pos:]
    verdicts = [found.group(0) for found in map(VERDICT.search, rows) if found]
    if len(set(verdicts)) > 1:  # met in some runs only
        merged = VERDICT.sub(f"met in {verdicts.count('met')} of {len(rows)} runs", merged, count=1)
    return merged


def combine(runs):
    """Merge the output lines of several runs: the k-th line of each shape is merged across runs.

    Log records (a leading timestamp) are dropped. Every shape of every run is printed, in the runs' line order; a
    verdict that differs between runs (`met` / `NOT met`) reads `met in k of n runs`; a shape that does not occur
    equally often in every run is printed per run, prefixed with the run number.
    """
    runs = [[line for line in run if line.strip() and not LOG_LINE.match(line)] for run in runs]
    by_shape = [{} for _ in runs]
    for index, run in enumerate(runs):
        for line in run:
            by_shape[index].setdefault(shape(line), []).append(line)
    positions = {}  # a shape's earliest line number in any run: the merged lines keep the runs' order
    for run in runs:
        for i, line in enumerate(run):
            positions[shape(line)] = min(i, positions.get(shape(line), i))
    merged = []
    for key in sorted(dict.fromkeys(shape(line) for run in runs for line in run), key=positions.get):
        groups = [table.get(key, []) for table in by_shape]
        if len({len(g) for g in groups}) == 1:
            merged += [_merge_line([g[k] for g in groups]) for k in range(len(groups[0]))]
        else:
            merged += [f"[run {i}] {other}" for i, g in enumerate(groups, 1) for other in g]
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--log", help="write each run's full output to LOG.runN.txt")
    parser.add_argument("--combine", nargs="+", metavar="RUN.txt", help="merge saved run outputs instead of running")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the benchmark command")
    args = parser.parse_args(argv)
    if args.combine:
        runs = []
        for path in args.combine:
            with open(path, encoding="utf-8") as f:
                runs.append(f.read().splitlines())
        print(f"# {len(runs)} runs: {' '.join(args.combine)}  (numbers that vary: median [min–max])")
        print("\n".join(combine(runs)))
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.runs < 1:
        parser.error("give --runs >= 1 and a command after --")
    runs = []
    for i in range(1, args.runs + 1):
        print(f"run {i}/{args.runs}: {' '.join(command)}", file=sys.stderr, flush=True)
        proc = subprocess.run(command, capture_output=True, text=True)
        if args.log:
            os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
            with open(f"{args.log}.run{i}.txt", "w", encoding="utf-8") as f:
                f.write(proc.stdout + proc.stderr)
        if proc.returncode:
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
            print(f"run {i} failed with exit code {proc.returncode}", file=sys.stderr)
            return proc.returncode
        runs.append(proc.stdout.splitlines())
    print(f"# {args.runs} runs of: {' '.join(command)}  (numbers that vary: median [min–max])")
    print("\n".join(combine(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
