#!/usr/bin/env python
"""HumanEval / MBPP evaluation, mindformers style: `python eval.py --device_target CPU --model DIR --dataset humaneval`.

Same flags as `pangu-codeclm evaluate` (see `python eval.py --help`); `--config FILE.yaml` supplies defaults for any
of them (keys as the flag names with underscores, e.g. `dataset: mbpp`, `n_samples: 200`); flags given on the
command line win.
"""
import sys


def _config_flags(argv):
    """Turn `--config FILE` into flags placed before the command-line ones (so the latter override)."""
    if "--config" not in argv:
        return argv
    i = argv.index("--config")
    if i + 1 >= len(argv):
        sys.exit("error: --config needs a YAML file")
    path, rest = argv[i + 1], argv[:i] + argv[i + 2:]
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        sys.exit(f"error: --config {path}: cannot read it as YAML ({exc})")
    if not isinstance(config, dict):
        sys.exit(f"error: {path}: expected a mapping of flag names to values")
    flags = []
    for key, value in config.items():
        flag = "--" + str(key)
        if value is True:
            flags.append(flag)
        elif value not in (False, None):
            flags += [flag, str(value)]
    return flags + rest


def main(argv=None):
    from pangu_codeclm.cli import main as cli_main
    argv = list(sys.argv[1:] if argv is None else argv)
    return cli_main(["evaluate"] + _config_flags(argv))


if __name__ == "__main__":
    sys.exit(main())
