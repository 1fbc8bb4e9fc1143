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


def shape(line):
    """The line with every number replaced by a placeholder."""
    return NUMBER.sub("#", line)


def numbers(line):
    return [float(m.replace(",", "")) for m in NUMBER.findall(line)]


def _fmt(value, like):
    decimals = len(like.split(".")[1]) if "." in like and "e" not in like.lower() else 0
    text = f"{value:,.{decimals}f}" if "," in like else f"{value:.{decimals}f}"
    return text


def combine(runs):
    """Merge the output lines of several runs: one line per shape, numbers as median [min–max]."""
    keyed = [[(shape(line), line) for line in run if line.strip()] for run in runs]
    if len({tuple(k for k, _ in run) for run in keyed}) != 1:
        out = []
        for i, run in enumerate(runs, 1):
            out += [f"[run {i}] {line}" for line in run if line.strip()]
        return out
    merged = []
    for rows in zip(*keyed):
        first = rows[0][1]
        values = [numbers(line) for _, line in rows]
        if all(v == values[0] for v in values):  # constants (sizes, counts): print once
            merged.append(first)
            continue
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
        merged.append("".join(parts) + first[pos:])
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--log", help="write each run's full output to LOG.runN.txt")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the benchmark command")
    args = parser.parse_args(argv)
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
