"""The grid's report: results.json, results.md and results.png from the cells run so far (`grid.Grid.run`)."""
import json
import math
import os
import time

from . import benchmarks
from .data.objectives import OBJECTIVE_TITLES
from .io_utils import atomic_path, atomic_write_json, atomic_write_text, file_sha256


def _columns(grid):
    cols = [("held-out code loss", lambda r: r["train"]["val_code_loss"])]
    for name, s in grid.eval_runs():
        label = benchmarks.get(s["dataset"]).title
        if s.get("incremental"):
            cols.append((f"{label} incr. macro pass@1", lambda r, n=name: r["evaluation"][n]["macro_pass@1"]))
            cols.append((f"{label} incr. micro pass@1", lambda r, n=name: r["evaluation"][n]["micro_pass@1"]))
        elif s["greedy"]:
            cols.append((f"{label} pass@1 (greedy)", lambda r, n=name: r["evaluation"][n]["pass@1"]))
        else:
            for k in (10, 100):
                cols.append((f"{label} pass@{k} (n={s['n_samples']})",
                             lambda r, n=name, k=k: r["evaluation"][n].get(f"pass@{k}")))
    return cols


def _fmt(value):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def write_results(grid, results):
    """results.json, results.md and results.png for the cells run so far (failed cells named with their log)."""
    columns = _columns(grid)
    rows = []
    for cell in grid.cells:
        record = results.get(cell.name)
        row = {"objective": OBJECTIVE_TITLES[cell.objective], "separation": cell.separation, "cell": cell.name}
        if record:
            row.update({label: get(record) for label, get in columns})
            row["status"] = "resumed" if record["train"].get("resumed") else "done"
        else:
            row["status"] = "failed" if cell.name in grid.failures else "not run"
        rows.append(row)
    settings = {"init": grid.init, "records": grid.records, "records_sha256": file_sha256(grid.records),
                "config": grid.config, "overrides": grid.user_overrides, "steps": grid.steps,
                "rows_per_separation": grid.rows_of, "data_notes": grid.data_notes,
                **grid.settings, "launcher": grid.args.launcher, "device_target": grid.args.device_target,
                "evaluation": {name: s for name, s in grid.eval_runs()}}
    payload = {"rows": rows, "settings": settings, "failures": grid.failures,
               "cells": results, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(os.path.join(grid.out, "results.json"), payload)
    header = ["objective", "separation"] + [label for label, _ in columns] + ["status"]
    lines = ["# Grid results", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(h)) if h not in ("objective", "separation", "status")
                                       else row[h] for h in header) + " |")
    lines += ["", "## Run settings (the same for every cell; packed rows per separation as listed)", ""]
    lines += [f"- {k}: `{json.dumps(v)}`" for k, v in settings.items() if k != "evaluation"]
    lines += [f"- evaluation `{name}`: `{json.dumps(s)}`" for name, s in settings["evaluation"].items()]
    lines += ["", "## Wall time per stage (s)", "", "| cell | train | export | evaluate |", "|---|---|---|---|"]
    for name, record in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{record['seconds'].get(s, 0):.0f}"
                                                 for s in ("train", "export", "evaluate")) + " |")
    if grid.failures:
        lines += ["", "## Failed cells", ""] + [f"- {name}: {msg.splitlines()[0]}" for name, msg in
                                                grid.failures.items()]
    lines += ["", "## Reproduce a cell", ""]
    for name, record in results.items():
        lines += [f"### {name}", "", "```bash", *record["reproduce"], "```", ""]
    text = "\n".join(lines) + "\n"
    atomic_write_text(os.path.join(grid.out, "results.md"), text)
    plot_results(rows, [label for label, _ in columns], os.path.join(grid.out, "results.png"))
    print("\n".join(lines[:4 + len(rows)]))
    print(f"[grid] wrote {os.path.join(grid.out, 'results.md')}, results.json, results.png")


def plot_results(rows, labels, path):
    """Grouped bars per objective (one bar per separation): held-out code loss, and each pass@1 column."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [labels[0]] + [lab for lab in labels if "pass@1" in lab]
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    separations = list(dict.fromkeys(r["separation"] for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    width = 0.8 / max(1, len(separations))
    for ax, label in zip(axes[0], panels):
        for j, sep in enumerate(separations):
            values = []
            for obj in objectives:
                row = next((r for r in rows if r["objective"] == obj and r["separation"] == sep), {})
                value = row.get(label)
                values.append(math.nan if value is None else value)
            ax.bar([i + (j - (len(separations) - 1) / 2) * width for i in range(len(objectives))], values, width,
                   label=sep)
        ax.set_xticks(range(len(objectives)))
        ax.set_xticklabels(objectives, rotation=20, fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(title="separation", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
