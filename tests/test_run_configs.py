"""The 300m run yamls: one base (configs/base/pangu_codeclm_300m.yaml) and per-run overrides through mindformers'
`base_config`; each resolves to exactly the config its self-contained file had before, for the training loader
(mindformers) and for `plan` / `grid` (`train.context.read_run_yaml`) alike."""
import hashlib
import json

import pytest

from conftest import ROOT

from pangu_codeclm.train.context import load_run_config, read_run_yaml

CONFIGS = ROOT / "configs"
# sha256 of the canonical JSON (sorted keys) of each self-contained file as it was before the base was split out.
BEFORE = {
    "none": "a0dd881db983710d9781fa59a06d8e934ac07a5736b3cdf27fddff615dfeb8b0",
    "partial": "c5f2cbc45f3761fa045bd9851b793e421d50b07e86c902c82817d7efc3c020d9",
    "full": "3e862d79d351703cc6502e7ec9e84da1df899c634db38e0c3f6e51d49c381284",
    "none_16p": "42eedf6315fee75464a8846800f59fd4c89d63d6e9bc1b694c76b1aac72609d3",
    "partial_16p": "7d9e144840654e7914a9f0a83bd2ed2bf6ac064fce948d759e24edd67407ab32",
    "full_16p": "8c12d6bcfc3d567f9214030c9fe9d81c88736a8153284463e52690309432468d",
}
VOCAB = {"none": 32013, "partial": 32477, "full": 64007}


def _sha(tree):
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()


def _differences(name):
    """What each run changes from the base recipe (dotted key -> value)."""
    sep, _, devices = name.partition("_")
    out = {"output_dir": f"./runs/pangu_codeclm_300m_{name}"}
    if sep != "none":
        out.update({"pangu.separation_map": f"./data/{sep}/tokenizer/replicated_tokens_map.pkl",
                    "train_dataset.dataset_files": f"./data/{sep}/mindrecord",
                    "model.model_config.vocab_size": VOCAB[sep], "model.model_config.separation": sep})
    if devices:
        out.update({"runner_config.batch_size": 4, "model.model_config.parallel.data_parallel": 16,
                    "model.model_config.parallel.optimizer_shard": True})
    return out


def _plain(tree):
    return json.loads(json.dumps(tree))


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_each_300m_config_resolves_to_its_former_file(name):
    from mindformers.tools.register import MindFormerConfig
    path = CONFIGS / f"pangu_codeclm_300m_{name}.yaml"
    resolved = read_run_yaml(path)
    assert _sha(resolved) == BEFORE[name]
    assert _plain(MindFormerConfig._file2dict(str(path))) == resolved  # the training loader resolves it alike
    expected = read_run_yaml(CONFIGS / "base" / "pangu_codeclm_300m.yaml")
    for key, value in _differences(name).items():
        node = expected
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        assert last == "output_dir" or node[last] != value, key  # a real override, not a repeat of the base
        node[last] = value
    assert resolved == expected
    cfg = load_run_config(path)
    mc = cfg.model.model_config
    assert (mc.vocab_size, mc.separation, mc.parallel.data_parallel, cfg.runner_config.batch_size) == (
        VOCAB[name.split("_")[0]], name.split("_")[0], 16 if name.endswith("16p") else 8,
        4 if name.endswith("16p") else 8)


def test_base_config_errors_name_the_file(tmp_path):
    (tmp_path / "run.yaml").write_text("base_config: missing.yaml\nseed: 1\n")
    with pytest.raises(FileNotFoundError, match=r"run\.yaml: base_config config file .*missing\.yaml does not exist"):
        read_run_yaml(tmp_path / "run.yaml")
    (tmp_path / "loop.yaml").write_text("base_config: loop.yaml\n")
    with pytest.raises(ValueError, match=r"loop\.yaml inherits from itself"):
        read_run_yaml(tmp_path / "loop.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match=r"list\.yaml: expected a mapping of sections"):
        read_run_yaml(tmp_path / "list.yaml")
    (tmp_path / "a.yaml").write_text("x: {p: 1, q: 2}\ny: 1\n")
    (tmp_path / "b.yaml").write_text("x: {q: 3}\nz: [1]\n")
    (tmp_path / "top.yaml").write_text("base_config: [a.yaml, b.yaml]\nx: {r: 4}\n")
    # bases merge in order (a later one replaces a whole section), then the file's keys merge over them
    assert read_run_yaml(tmp_path / "top.yaml") == {"x": {"q": 3, "r": 4}, "y": 1, "z": [1]}
    from mindformers.tools.register import MindFormerConfig
    assert _plain(MindFormerConfig._file2dict(str(tmp_path / "top.yaml"))) == read_run_yaml(tmp_path / "top.yaml")
