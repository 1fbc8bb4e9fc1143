"""`pangu-codeclm grid`: the paper's experiment — objectives x separations, trained and evaluated alike, in one table.

Every cell starts from the same checkpoint (`--init`, separation none; partial/full grow its embedding as the
reference does, `train/pretrained.py`), reads data prepared from the same records with the same shuffle, and trains
with the same seed, data order, steps and schedule. Layout under `--out`:

    tokenizers/<separation>/         the init's vocab.model with that separation
    data/<separation>/<objective>/   prepared shards (corrupt_code links code's shards: the rows are identical)
    cells/<objective>-<separation>/  train/ (checkpoints, metrics.csv), model/ (MindSpore export), eval/<run>/,
                                     logs/, state/ (finished stages), cell.json (what the cell ran)
    results.md, results.json, results.png

Every stage leaves a record in a `state/` directory and is skipped on a re-run; a half-trained cell resumes from its
newest checkpoint; a failing cell is reported with its log and the other cells go on.
"""
import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import types

from . import benchmarks
from .data.objectives import OBJECTIVES
from .demo import Demo, StageFailed
from .grid_report import write_results
from .io_utils import atomic_write_json, load_json
from .separation import SEPARATIONS
from .tokenization.base import SEPARATION_MAP_FILE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(ROOT, "configs", "pangu_codeclm_tiny_cpu.yaml")
SHARES_ROWS_WITH = {"corrupt_code": "code"}  # identical packed rows; corruption happens as rows are read
LAUNCHERS = ("standalone", "msrun", "rank-table")
ARCHITECTURE = ("hidden_size", "num_layers", "num_heads", "ffn_hidden_size", "max_position_embeddings")
SAMPLED_N = 200
DEMO_EVAL_LIMIT = 20  # problems per dataset in `demo.sh --grid` (12 cells x incremental sub-tasks on 2 CPU cores)


class GridError(ValueError):
    """Bad grid input; the message names the option or file."""


@dataclasses.dataclass(frozen=True)
class Cell:
    objective: str
    separation: str

    @property
    def name(self):
        return f"{self.objective}-{self.separation}"


def parse_cells(text):
    """'all' or comma-separated OBJECTIVE:SEPARATION items ('*' for either side) -> cells in the paper's order."""
    wanted = set()
    for item in (text or "all").split(","):
        item = item.strip()
        if item == "all":
            item = "*:*"
        objective, sep, separation = item.partition(":")
        if not sep:
            raise GridError(f"--cells item {item!r}: expected OBJECTIVE:SEPARATION (or 'all')")
        objectives = OBJECTIVES if objective == "*" else (objective,)
        separations = SEPARATIONS if separation == "*" else (separation,)
        for o in objectives:
            if o not in OBJECTIVES:
                raise GridError(f"--cells item {item!r}: objective must be one of {', '.join(OBJECTIVES)} or *")
            for s in separations:
                if s not in SEPARATIONS:
                    raise GridError(f"--cells item {item!r}: separation must be one of {', '.join(SEPARATIONS)} or *")
                wanted.add(Cell(o, s))
    return [Cell(o, s) for o in OBJECTIVES for s in SEPARATIONS if Cell(o, s) in wanted]


def _dotted_set(tree, key, value):
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _dotted_get(tree, key, default=None):
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def effective_config(config_path, overrides):
    """The base yaml (its `base_config` resolved) with the `--set` overrides applied (what every cell's run reads), as
    a plain dict."""
    from .train.context import read_run_yaml
    tree = read_run_yaml(config_path)
    for key, value in overrides.items():
        _dotted_set(tree, key, value)
    return tree


def run_settings(tree):
    """The settings that must be equal in every cell (seed, data order, batch, schedule), from an effective config."""
    from .train.context import RUN_DEFAULTS
    parallel = _dotted_get(tree, "model.model_config.parallel", {}) or {}
    micro = parallel.get("micro_batch_num", 1) if parallel.get("pipeline_stage", 1) > 1 else 1
    return {"seed": tree.get("seed", 0), "data_seed": _dotted_get(tree, "train_dataset.seed", 1234),
            "data_shuffle": bool(_dotted_get(tree, "train_dataset.shuffle", True)),
            "global_batch": int(_dotted_get(tree, "runner_config.batch_size")) * parallel.get("data_parallel", 1)
            * micro,
            "seq_length": int(_dotted_get(tree, "model.model_config.seq_length")),
            "epochs": _dotted_get(tree, "pangu.epochs", RUN_DEFAULTS["epochs"]),
            "validation_fraction": float(_dotted_get(tree, "pangu.validation_fraction",
                                                     RUN_DEFAULTS["validation_fraction"])),
            "lr_schedule": tree.get("lr_schedule"), "optimizer": tree.get("optimizer"),
            "dropout": {k: _dotted_get(tree, f"model.model_config.{k}") for k in
                        ("embedding_dropout", "hidden_dropout", "attention_dropout")}}


def data_fingerprint(data_dir, separation_map):
    """sha256 over every packed row's ids mapped back to the text side, in stored order: equal for two datasets
    exactly when they hold the same samples in the same order (whatever the separation or objective)."""
    import mindspore.dataset as ds
    import numpy as np

    from .data.mindrecord import resolve_files
    rows = ds.MindDataset(resolve_files(data_dir), columns_list=["input_ids", "segment_lengths"], shuffle=False)
    digest = hashlib.sha256()
    inverse = {int(new): int(old) for old, new in (separation_map or {}).items()}
    table = None
    for row in rows.create_dict_iterator(output_numpy=True, num_epochs=1):
        ids = row["input_ids"].astype(np.int64)
        if table is None or ids.max() >= len(table):
            table = np.arange(max(int(ids.max()) + 1, max(inverse, default=0) + 1), dtype=np.int64)
            for new, old in inverse.items():
                table[new] = old
        digest.update(table[ids].astype(np.int32).tobytes())
        digest.update(row["segment_lengths"].astype(np.int32).tobytes())
    return digest.hexdigest()


def data_order(rows, settings, steps):
    """sha256 of the stream of stored row ids the training reads, step by step (train/dataset.py's own order)."""
    import numpy as np

    from .train.dataset import rank_indices, split_rows
    train_rows, _ = split_rows(rows, settings["validation_fraction"])
    order = rank_indices(len(train_rows), steps, settings["global_batch"], seed=settings["data_seed"],
                         shuffle=settings["data_shuffle"])
    return hashlib.sha256(np.asarray(train_rows, np.int64)[order].tobytes()).hexdigest()


def _read_metrics(path):
    from .train.callbacks import read_metrics
    return read_metrics(path)


def step_seconds(rows):
    """Median seconds per step from metrics rows: the first step of each (resumed) run, compilation, left out."""
    import numpy as np
    diffs = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(rows, rows[1:]) if b["elapsed_s"] > a["elapsed_s"]]
    return float(np.median(diffs)) if diffs else math.nan


def _shell(argv):
    import shlex
    return " ".join(shlex.quote(str(a)) for a in argv)


class Grid:
    """Plans and runs the cells; `Demo` runners (logs, progress, stage records) do the running."""

    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        self.cells = parse_cells(args.cells)
        self.init = os.path.abspath(args.init)
        self.records = os.path.abspath(args.records)
        self.config = os.path.abspath(args.config)
        from .train.context import parse_overrides
        self.user_overrides = parse_overrides(args.overrides)
        if args.seq_length:
            self.user_overrides["model.model_config.seq_length"] = args.seq_length
        self.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
        self.root = Demo(types.SimpleNamespace(workdir=self.out))
        self.failures = {}

    # ----------------------------------------------------------------------------------------------------- checks
    def check_inputs(self):
        from .checkpoints import read_config
        for what, path in (("--init", self.init), ("--records", self.records), ("--config", self.config)):
            if not os.path.exists(path):
                raise GridError(f"{what} {path}: not found")
        try:
            self.init_config = read_config(self.init)
        except ValueError as exc:
            raise GridError(f"--init {self.init}: {exc}") from None
        if self.init_config.separation != "none":
            raise GridError(f"--init {self.init}: separation is {self.init_config.separation!r}; the grid starts "
                            f"from an unseparated checkpoint (partial and full are grown from it)")
        if not os.path.isfile(os.path.join(self.init, "vocab.model")):
            raise GridError(f"--init {self.init}: no vocab.model (the tokenizer every separation is built from)")
        paper = paper_benchmarks()
        if self.datasets is None:  # every benchmark of the paper whose data is at hand
            self.datasets = [name for name in paper if not _reads_data_file(name) or self.mbpp_path()]
        for name in self.datasets:
            if name not in paper:
                raise GridError(f"--datasets: {name!r} is not one of {', '.join(paper)} (the benchmarks with the "
                                f"paper's protocol)")
            if _reads_data_file(name) and not self.mbpp_path():
                raise GridError(f"--datasets {name}: no {benchmarks.get(name).title} file; pass --mbpp-path FILE")
        if self.args.launcher == "rank-table" and not self.args.rank_table:
            raise GridError("--launcher rank-table needs --rank-table FILE")
        self.tree = effective_config(self.config, self.user_overrides)
        if int(_dotted_get(self.tree, "model.model_config.seq_length")) > self.init_config.max_position_embeddings:
            raise GridError(f"seq_length {_dotted_get(self.tree, 'model.model_config.seq_length')} exceeds the "
                            f"init's max_position_embeddings {self.init_config.max_position_embeddings}")
        self.settings = run_settings(self.tree)

    def mbpp_path(self):
        from .benchmarks.mbpp import local_mbpp_path
        return local_mbpp_path(self.args.mbpp_path)

    # ------------------------------------------------------------------------------------------------- shared data
    def tokenizer_dir(self, separation):
        return os.path.join(self.out, "tokenizers", separation)

    def data_dir(self, cell_or_objective, separation=None):
        if isinstance(cell_or_objective, Cell):
            cell_or_objective, separation = cell_or_objective.objective, cell_or_objective.separation
        return os.path.join(self.out, "data", separation, cell_or_objective)

    def make_tokenizer(self, separation):
        from .tokenization.registry import kind_of, load_tokenizer, tokenizer_cls
        if separation == "none":
            tok = load_tokenizer(self.init, separation="none")
        else:
            tok = tokenizer_cls(kind_of(self.init)).from_vocab(
                os.path.join(self.init, "vocab.model"), separation,
                self.args.partial_tokens if separation == "partial" else None)
        if separation == "none" and tok.vocab_size != self.init_config.vocab_size:
            raise GridError(f"--init {self.init}: its tokenizer has {tok.vocab_size} ids but the model "
                            f"{self.init_config.vocab_size} rows")
        tok.save_pretrained(self.tokenizer_dir(separation))
        return {"vocab_size": tok.vocab_size, "map_entries": len(tok.separation_map)}

    def make_data(self, objective, separation):
        """Prepared shards for (objective, separation); corrupt_code links code's (preparing those first)."""
        from .data.mindrecord import META_NAME
        from .data.prepare import corruption_meta, prepare
        from .tokenization.registry import load_tokenizer
        out = self.data_dir(objective, separation)
        source = SHARES_ROWS_WITH.get(objective)
        if source is None:
            meta = prepare(self.records, self.tokenizer_dir(separation), objective, self.settings["seq_length"],
                           out, workers=self.args.prepare_workers, overwrite=True, progress=False)
        else:
            self.root.stage(f"data_{separation}_{source}", lambda: self.make_data(source, separation))
            src = self.data_dir(source, separation)
            tmp = out + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            for name in os.listdir(src):
                if name != META_NAME:
                    try:
                        os.link(os.path.join(src, name), os.path.join(tmp, name))
                    except OSError:
                        shutil.copy2(os.path.join(src, name), os.path.join(tmp, name))
            meta = dict(load_json(os.path.join(src, META_NAME)), objective=objective,
                        corruption=corruption_meta(load_tokenizer(self.tokenizer_dir(separation))),
                        rows_shared_with=source)
            atomic_write_json(os.path.join(tmp, META_NAME), meta)
            shutil.rmtree(out, ignore_errors=True)
            os.rename(tmp, out)
        from .io_utils import load_int_map_pickle
        mapping = load_int_map_pickle(os.path.join(self.tokenizer_dir(separation), SEPARATION_MAP_FILE))
        return {"rows": meta["rows"], "samples": meta["samples"], "tokens": meta["tokens"],
                "dropped_too_long": meta.get("dropped_too_long"),
                "shuffle_seed": meta["shuffle_seed"], "records_sha256": meta["records_sha256"],
                "fingerprint": data_fingerprint(out, mapping)}

    def prepare_all(self):
        for separation in sorted({c.separation for c in self.cells}, key=SEPARATIONS.index):
            self.root.stage(f"tokenizer_{separation}", lambda s=separation: self.make_tokenizer(s))
        for cell in self.cells:
            self.root.stage(f"data_{cell.separation}_{cell.objective}",
                            lambda c=cell: self.make_data(c.objective, c.separation))
        data = {c: self.root.results[f"data_{c.separation}_{c.objective}"]["summary"] for c in self.cells}
        for key in ("records_sha256", "shuffle_seed", "samples"):
            if len({str(d.get(key)) for d in data.values()}) != 1:
                raise GridError(f"the cells' prepared data differ in {key}: "
                                + ", ".join(f"{c.name} {d.get(key)}" for c, d in data.items()))
        self.data_notes = []
        if len({d.get("dropped_too_long") for d in data.values()}) != 1:  # longer samples under one separation
            self.data_notes.append("samples dropped as too long differ: " + ", ".join(
                f"{c.name} {d.get('dropped_too_long')}" for c, d in data.items()))
        self.rows_of = {}
        for c, d in data.items():  # the objectives of one separation pack the same rows
            if self.rows_of.setdefault(c.separation, (d["rows"], d["fingerprint"])) != (d["rows"], d["fingerprint"]):
                raise GridError(f"separation {c.separation}: {c.name}'s packed rows differ from the other objectives'")
        self.rows_of = {sep: rows for sep, (rows, _) in self.rows_of.items()}
        if len(set(self.rows_of.values())) > 1:  # partial's added tokens are matched in text too: other lengths
            self.data_notes.append("packed rows per separation: " + ", ".join(
                f"{sep} {rows}" for sep, rows in self.rows_of.items()))
        for note in self.data_notes:
            print(f"[grid] note: {note}")
        self.rows = min(self.rows_of.values())
        self.steps = self.resolve_steps()

    def resolve_steps(self):
        steps = self.args.steps or int(_dotted_get(self.tree, "pangu.train_steps", -1))
        if steps == -1:
            from .train.dataset import split_rows
            train_rows = len(split_rows(self.rows, self.settings["validation_fraction"])[0])
            steps = train_rows * int(self.settings["epochs"]) // self.settings["global_batch"]
        if steps <= 0:
            raise GridError(f"training steps must be positive, got {steps} (--steps or pangu.train_steps)")
        return steps

    # ------------------------------------------------------------------------------------------------------- cells
    def cell_dir(self, cell, *parts):
        return os.path.join(self.out, "cells", cell.name, *parts)

    def train_overrides(self, cell, steps):
        cfg = self.init_config
        tok = self.root.results[f"tokenizer_{cell.separation}"]["summary"]
        sets = {f"model.model_config.{k}": getattr(cfg, k) for k in ARCHITECTURE}
        sets.update({"model.model_config.vocab_size": tok["vocab_size"],
                     "model.model_config.separation": cell.separation,
                     "model.model_config.objective": cell.objective,
                     "model.model_config.pad_token_id": cfg.pad_token_id,
                     "model.model_config.eos_token_id": cfg.eos_token_id,
                     "pangu.pretrained": self.init,
                     "pangu.separation_map": os.path.join(self.tokenizer_dir(cell.separation), SEPARATION_MAP_FILE)
                     if cell.separation != "none" else "",
                     "pangu.train_steps": steps,
                     "pangu.show_bar": False})
        save = int(_dotted_get(self.tree, "pangu.save_steps", steps) or steps)
        if self.args.save_steps:
            save = self.args.save_steps
        sets["pangu.save_steps"] = min(save, steps)
        if int(_dotted_get(self.tree, "pangu.eval_steps", 0) or 0) <= 0:
            sets["pangu.eval_steps"] = steps  # the held-out code-token loss at the last step
        sets.update(self.user_overrides)
        return sets

    def train_argv(self, cell, out_dir, steps, resume):
        flags = ["--device_target", self.args.device_target, "--output_dir", out_dir,
                 "--train_dataset_dir", self.data_dir(cell)]
        for key, value in self.train_overrides(cell, steps).items():
            flags += ["--set", f"{key}={json.dumps(value) if isinstance(value, (bool, type(None))) else value}"]
        if resume:
            flags.append("--resume")
        launcher = self.args.launcher
        if launcher == "standalone":
            return [sys.executable, os.path.join(ROOT, "train.py"), "--config", self.config, *flags]
        if launcher == "msrun":
            return ["bash", os.path.join(ROOT, "scripts", "run_msrun_train.sh"), self.config,
                    str(self.args.worker_num), "--", *flags]
        return ["bash", os.path.join(ROOT, "scripts", "run_distribute_train.sh"), os.path.abspath(self.args.rank_table),
                self.config, str(self.args.worker_num), "--", *flags]

    def eval_runs(self):
        """(run name, Settings keyword dict) of the paper's protocol for each dataset."""
        runs = []
        base = dict(mode="paper", batch_size=self.args.eval_batch_size, limit=self.args.eval_limit or 0,
                    workers=self.args.eval_workers, mbpp_path=self.mbpp_path(),
                    max_new_tokens=self.args.max_new_tokens)
        for dataset in self.datasets:
            runs.append((f"{dataset}_greedy", dict(base, dataset=dataset, greedy=True, n_samples=1, ks=(1,))))
            if not self.args.no_incremental:
                runs.append((f"{dataset}_incremental", dict(base, dataset=dataset, greedy=True, n_samples=1, ks=(1,),
                                                            incremental=True)))
            if self.args.sampled:
                runs.append((f"{dataset}_sampled", dict(base, dataset=dataset, greedy=False,
                                                        n_samples=self.args.n_samples, ks=(1, 10, 100))))
        return runs

    def eval_commands(self, cell):
        out = []
        for name, s in self.eval_runs():
            argv = ["python", "eval.py", "--device_target", self.args.device_target, "--model", self.cell_dir(cell,
                    "model"), "--dataset", s["dataset"], "--mode", "paper", "--out", self.cell_dir(cell, "eval", name),
                    "--batch-size", s["batch_size"], "--max-new-tokens", s["max_new_tokens"], "--workers",
                    s["workers"], "--resume"]
            argv += ["--greedy"] if s["greedy"] else ["--n-samples", s["n_samples"], "--k", "1,10,100"]
            argv += ["--incremental"] if s.get("incremental") else []
            argv += ["--limit", s["limit"]] if s["limit"] else []
            argv += ["--mbpp-path", s["mbpp_path"]] if _reads_data_file(s["dataset"]) else []
            out.append(_shell(argv))
        return out

    def run_cell(self, cell):
        runner = Demo(types.SimpleNamespace(workdir=self.cell_dir(cell)))
        runner.stage("train", lambda: self.train_cell(runner, cell))
        runner.stage("export", lambda: self.export_cell(runner, cell))
        runner.stage("evaluate", lambda: self.evaluate_cell(runner, cell))
        record = {name: r for name, r in runner.results.items()}
        atomic_write_json(self.cell_dir(cell, "cell.json"), self.cell_record(cell, record))
        return record

    def train_cell(self, runner, cell):
        out = self.cell_dir(cell, "train")
        resumed = os.path.isdir(os.path.join(out, "checkpoint"))
        errors = []
        for attempt in range(1 + self.args.retries):  # a failed run restarts from its newest checkpoint
            resume = os.path.isdir(os.path.join(out, "checkpoint"))
            try:
                runner.run_command("train" if attempt == 0 else f"train_retry{attempt}",
                                   self.train_argv(cell, out, self.steps, resume))
                break
            except StageFailed as exc:
                errors.append(str(exc))
                if attempt == self.args.retries:
                    raise StageFailed("\n".join(errors)) from None
                print(f"[grid] cell {cell.name}: training failed, retrying from its newest checkpoint "
                      f"({str(exc).splitlines()[0]})", file=sys.stderr)
        rows = _read_metrics(os.path.join(out, "metrics.csv"))
        steps = [r["step"] for r in rows]
        if steps != list(range(1, self.steps + 1)):
            raise StageFailed(f"cell {cell.name}: metrics.csv has steps {steps[:3]}..{steps[-3:]}, expected "
                              f"1..{self.steps}; see {os.path.join(runner.log_dir, 'train.log')}")
        last = self.last_checkpoint(out)
        val = [r["val_code_loss"] for r in rows if math.isfinite(r.get("val_code_loss", math.nan))]
        return {"steps": steps[-1], "data_position": last["data_position"], "total_steps": last["total_steps"],
                "loss_end": rows[-1]["loss"], "val_code_loss": val[-1] if val else math.nan,
                "step_s": step_seconds(rows), "resumed": resumed, "attempts": len(errors) + 1}

    @staticmethod
    def last_checkpoint(train_dir):
        from .train import checkpoint as ckpt_lib
        info = ckpt_lib.find_resume_checkpoint(ckpt_lib.rank_dir(train_dir, 0))
        if info is None:
            raise StageFailed(f"no intact training checkpoint under {ckpt_lib.rank_dir(train_dir, 0)}")
        return info

    def export_cell(self, runner, cell):
        ckpt = self.last_checkpoint(self.cell_dir(cell, "train"))["ckpt_path"]
        model_dir = self.cell_dir(cell, "model")
        runner.run_command("export", runner.cli("convert", "--to", "mindspore", ckpt, model_dir, "--config",
                                                self.cell_dir(cell, "train"), "--tokenizer",
                                                self.tokenizer_dir(cell.separation), "--overwrite"))
        if self.args.hf:
            runner.run_command("export_hf", runner.cli("convert", "--to", "hf", model_dir, self.cell_dir(cell, "hf"),
                                                       "--overwrite"))
        return {"checkpoint": os.path.relpath(ckpt, self.out), "model": os.path.relpath(model_dir, self.out)}

    def evaluate_cell(self, runner, cell):
        spec = {"model": self.cell_dir(cell, "model"), "device_target": self.args.device_target,
                "runs": [{"out": self.cell_dir(cell, "eval", name), "settings": s} for name, s in self.eval_runs()]}
        spec_path = self.cell_dir(cell, "eval_spec.json")
        atomic_write_json(spec_path, spec)
        runner.run_command("evaluate", [sys.executable, "-m", "pangu_codeclm.grid", "_evaluate", spec_path])
        return {name: metrics_of(load_json(os.path.join(self.cell_dir(cell, "eval", name), "summary.json")))
                for name, _ in self.eval_runs()}

    def cell_record(self, cell, stages):
        data = self.root.results[f"data_{cell.separation}_{cell.objective}"]["summary"]
        return {"cell": cell.name, "objective": cell.objective, "separation": cell.separation,
                "init": self.init, "config": self.config, "steps": self.steps,
                "rows": self.rows_of[cell.separation],
                "settings": self.settings, "data": data,
                "data_order_sha256": data_order(self.rows_of[cell.separation], self.settings, self.steps),
                "train": stages["train"]["summary"], "evaluation": stages["evaluate"]["summary"],
                "seconds": {name: round(r["seconds"], 1) for name, r in stages.items()},
                "reproduce": self.reproduce(cell)}

    def reproduce(self, cell):
        tok = self.tokenizer_dir(cell.separation)
        prepare = ["pangu-codeclm", "prepare", "--records", self.records, "--tokenizer", tok, "--objective",
                   cell.objective, "--seq-length", self.settings["seq_length"], "--out", self.data_dir(cell),
                   "--overwrite"]  # the same rows (and meta) as the grid's, which links corrupt_code's to code's
        train = self.train_argv(cell, self.cell_dir(cell, "train"), self.steps, resume=False)
        train[0] = "python" if train[0] == sys.executable else train[0]
        return [_shell(prepare), _shell(train),
                _shell(["pangu-codeclm", "convert", "--to", "mindspore", "CHECKPOINT (newest step_*.ckpt of "
                        + self.cell_dir(cell, "train", "checkpoint", "rank_0") + ")", self.cell_dir(cell, "model"),
                        "--config", self.cell_dir(cell, "train"), "--tokenizer", tok])] + self.eval_commands(cell)

    # ------------------------------------------------------------------------------------------------------ top level
    def run(self):
        self.check_inputs()
        os.makedirs(self.out, exist_ok=True)
        self.prepare_all()
        results = {}
        for cell in self.cells:
            print(f"[grid] cell {cell.name}")
            try:
                self.run_cell(cell)
                results[cell.name] = load_json(self.cell_dir(cell, "cell.json"))
                self.failures.pop(cell.name, None)
            except Exception as exc:  # one failing cell must not stop the others
                message = str(exc) if isinstance(exc, StageFailed) else \
                    f"{type(exc).__name__}: {exc} (logs: {self.cell_dir(cell, 'logs')})"
                print(f"[grid] cell {cell.name} FAILED: {message}", file=sys.stderr)
                self.failures[cell.name] = message
        write_results(self, results)
        return 1 if self.failures else 0

    def dry_run(self):
        """Prepare the data, time a short calibration run of the first cell, print the plan; trains no cell."""
        self.check_inputs()
        os.makedirs(self.out, exist_ok=True)
        self.prepare_all()
        cell = self.cells[0]
        calib = os.path.join(self.out, "calibration")
        shutil.rmtree(calib, ignore_errors=True)
        n = self.args.calibration_steps
        self.root.run_command("calibration", self.train_argv(cell, calib, n, resume=False))
        step_s = step_seconds(_read_metrics(os.path.join(calib, "metrics.csv")))
        ckpt = self.last_checkpoint(calib)["ckpt_path"]
        ckpt_bytes = os.path.getsize(ckpt)
        keep = int(_dotted_get(self.tree, "pangu.keep_checkpoints", 3) or 3)
        data_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(self.out, "data"))
                         for f in fs)
        per_cell = ckpt_bytes * keep + ckpt_bytes // 3 * (2 if self.args.hf else 1)
        plan = {"cells": [c.name for c in self.cells], "steps": self.steps, "rows": self.rows_of,
                "data_notes": self.data_notes,
                "settings": self.settings, "step_s": round(step_s, 4),
                "train_s_per_cell": round(step_s * self.steps, 1), "train_s_total": round(step_s * self.steps *
                                                                                          len(self.cells), 1),
                "disk_bytes": {"data": data_bytes, "per_cell": per_cell, "total": data_bytes + per_cell *
                               len(self.cells)},
                "evaluation": [name for name, _ in self.eval_runs()]}
        shutil.rmtree(calib, ignore_errors=True)
        atomic_write_json(os.path.join(self.out, "plan.json"), plan)
        print(format_plan(plan))
        return 0


def metrics_of(summary):
    """The numbers a results row shows from one evaluation summary.json."""
    m = summary["metrics"]
    if summary.get("incremental"):
        return {"macro_pass@1": m["macro"].get("pass@1"), "micro_pass@1": m["micro"].get("pass@1"),
                "tasks": m["tasks"], "problems": m.get("problems")}
    return {**{k: v for k, v in m.items() if k.startswith("pass@")}, "tasks": m["tasks"]}


def format_plan(plan):
    gib = 1024 ** 3
    return "\n".join([
        f"[grid] plan: {len(plan['cells'])} cells: {', '.join(plan['cells'])}",
        f"[grid] each: {plan['steps']} steps of global batch {plan['settings']['global_batch']} x "
        f"{plan['settings']['seq_length']} tokens; packed rows {plan['rows']} (seed {plan['settings']['seed']}, data "
        f"seed {plan['settings']['data_seed']})",
        f"[grid] calibration: {plan['step_s']:.3f} s/step -> training {plan['train_s_per_cell'] / 60:.1f} min per "
        f"cell, {plan['train_s_total'] / 3600:.2f} h for the grid (evaluation not included: "
        f"{', '.join(plan['evaluation'])})",
        f"[grid] disk: data {plan['disk_bytes']['data'] / gib:.2f} GiB + {plan['disk_bytes']['per_cell'] / gib:.2f} "
        f"GiB per cell = {plan['disk_bytes']['total'] / gib:.2f} GiB"])


def paper_benchmarks():
    """The registered benchmarks the grid evaluates: those with the paper's protocol (`--mode paper`)."""
    return [name for name, bench in benchmarks.REGISTRY.items() if "paper" in bench.modes]


def _reads_data_file(name):
    """Whether the benchmark reads a user-given file (`--mbpp-path`) rather than shipped data."""
    return benchmarks.get(name).data_file_help is not None


# ------------------------------------------------------------------------------------------- worker processes


def evaluate_cell_worker(spec_path):
    """One process per cell: the sandbox first, the model loaded once, every evaluation run resumed or skipped."""
    from .evaluation import harness, records, scoring
    from .evaluation.execute import Executor
    from .evaluation.settings import Settings
    spec = load_json(spec_path)
    model = {}

    def load():
        if "m" not in model:
            import pangu_codeclm
            model["m"] = pangu_codeclm.from_pretrained(spec["model"], device_target=spec["device_target"])
        return model["m"]

    workers = max(s["settings"]["workers"] for s in spec["runs"])
    with Executor(workers=workers).start() as executor:
        for run_spec in spec["runs"]:
            if os.path.isfile(os.path.join(run_spec["out"], records.SUMMARY)):
                continue
            settings = Settings(**dict(run_spec["settings"], ks=tuple(run_spec["settings"]["ks"])))

            def loader(settings=settings):
                m = load()
                limit = getattr(m.config, "max_position_embeddings", None)
                settings.max_length = min(settings.max_length, limit or settings.max_length)
                return m

            summary = harness.evaluate(settings, run_spec["out"], model_loader=loader, resume=True,
                                       executor=executor, progress=False)
            scoring.print_summary(summary)


def write_random_init(tokenizer_dir, out_dir, seq_length, seed=1234):
    """A seeded random checkpoint (separation none) of the tiny config's architecture with `tokenizer_dir`'s
    vocabulary: the demo's stand-in for a pretrained model."""
    import yaml

    from .config import PanguCodeCLMConfig
    from .checkpoints.mindspore_dir import write_mindspore
    from .families import family_for
    from .tokenization.registry import kind_of, tokenizer_cls
    tok = tokenizer_cls(kind_of(tokenizer_dir)).from_vocab(os.path.join(tokenizer_dir, "vocab.model"), "none")
    with open(TINY_CONFIG, encoding="utf-8") as f:
        arch = yaml.safe_load(f)["model"]["model_config"]
    config = PanguCodeCLMConfig(vocab_size=tok.vocab_size, **{k: arch[k] for k in ARCHITECTURE[:-1]},
                                max_position_embeddings=max(int(seq_length), 256), seq_length=int(seq_length),
                                separation="none", pad_token_id=tok.pad_id, eos_token_id=tok.eot_id)
    write_mindspore(out_dir, config, family_for(config).random_weights(config, seed=seed), {}, tok, overwrite=True)
    atomic_write_json(os.path.join(out_dir, "init.json"), {"random_init_seed": seed, "vocab_size": tok.vocab_size})


def run_demo_grid(demo):
    """`bash scripts/demo.sh --grid`: mine -> tokenizer -> a random tiny init -> the grid at a small budget."""
    from . import demo_stages
    demo.stage("mine", lambda: demo_stages.mine(demo))
    demo.stage("tokenizer", lambda: demo_stages.tokenizer(demo))
    init = demo.path("grid_init")

    def make_init():
        demo.run_command("grid_init", [sys.executable, "-m", "pangu_codeclm.grid", "_init", demo.path("tokenizer"),
                                       init, str(demo.args.seq_length)])
        return load_json(os.path.join(init, "init.json"))

    demo.stage("grid_init", make_init)
    argv = demo.cli("grid", "--init", init, "--records", demo.path("pairs.jsonl"), "--out", demo.path("grid"),
                    "--steps", demo.args.grid_steps, "--seq-length", demo.args.seq_length, "--prepare-workers", 2,
                    "--eval-workers", 2, "--set", "runner_config.batch_size=8", "--set",
                    "model.model_config.batch_size=8")
    argv += ["--eval-limit", str(demo.args.eval_limit or DEMO_EVAL_LIMIT)]
    if demo.args.mbpp_path:
        argv += ["--mbpp-path", demo.args.mbpp_path]

    def grid():
        try:
            demo.run_command("grid", argv)
        finally:  # the table of the cells that finished, also when one failed
            results = demo.path("grid", "results.md")
            if os.path.isfile(results):
                with open(results, encoding="utf-8") as f:
                    print(f.read())
        rows = load_json(demo.path("grid", "results.json"))["rows"]
        return {"cells": len(rows), "done": sum(r["status"] in ("done", "resumed") for r in rows)}

    demo.stage("grid", grid)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_evaluate":
        evaluate_cell_worker(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "_init":
        write_random_init(*sys.argv[2:])
    else:
        raise SystemExit("usage (internal; see pangu-codeclm grid): python -m pangu_codeclm.grid _evaluate SPEC.json\n"
                         "       python -m pangu_codeclm.grid _init TOKENIZER_DIR OUT_DIR SEQ_LENGTH")
