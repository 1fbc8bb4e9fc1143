"""Checkpoint IO: HF and MindSpore layouts, round trips, and refusal of bad inputs (nothing returned on failure)."""
import json
import os
import pickle
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from conftest import SHARED_DATA
from pangu_codeclm.cli import main as cli_main
from pangu_codeclm.config import ConfigError
from pangu_codeclm.checkpoints import CheckpointError, detect_format, read_checkpoint
from pangu_codeclm.checkpoints.checks import check_weights
from pangu_codeclm.checkpoints.hf import write_hf
from pangu_codeclm.checkpoints.mindspore_dir import write_mindspore
from pangu_codeclm.checkpoints.tensors import LazyWeights, TorchBinFile, weight_shape
from pangu_codeclm.checkpoints.training import read_training_checkpoint
from pangu_codeclm.families import family_for
from pangu_codeclm.io_utils import save_int_map_pickle
from test_torch_model import tiny_case


def write_raw_hf(directory, config, raw, mapping=None):
    """An HF directory written by hand (no checks), like a downloaded release."""
    os.makedirs(directory, exist_ok=True)
    config.save_hf_json(os.path.join(directory, "config.json"))
    save_file(raw, os.path.join(directory, "model.safetensors"))
    if mapping:
        save_int_map_pickle(os.path.join(directory, "replicated_tokens_map.pkl"), mapping)
    return directory


def assert_same_weights(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name


@pytest.mark.parametrize("separation", ["none", "partial", "full"])
def test_hf_round_trip_and_ms_hf_ms_is_bit_exact(separation, tmp_path):
    config, mapping, weights = tiny_case(separation)
    write_mindspore(tmp_path / "ms", config, weights, mapping)
    assert detect_format(tmp_path / "ms") == "mindspore"
    assert cli_main(["convert", "--to", "hf", str(tmp_path / "ms"), str(tmp_path / "hf")]) == 0
    assert detect_format(tmp_path / "hf") == "hf"
    assert cli_main(["convert", "--to", "mindspore", str(tmp_path / "hf"), str(tmp_path / "ms2")]) == 0
    back = read_checkpoint(tmp_path / "ms2")
    assert_same_weights(back.weights, weights)
    assert back.separation_map == mapping and back.config.to_model_dict() == config.to_model_dict()
    # The HF files are what the reference code reads: plain safetensors under the HF keys, the pickled map.
    assert set(load_file(str(tmp_path / "hf" / "model.safetensors"))) == set(family_for(config).shapes(config))
    assert os.path.isfile(tmp_path / "hf" / "replicated_tokens_map.pkl") == bool(mapping)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    # The MindSpore layout's checkpoint is a real MindSpore checkpoint.
    import mindspore as ms
    params = ms.load_checkpoint(str(tmp_path / "ms2" / "model.safetensors"), format="safetensors")
    assert np.array_equal(params["transformer.wte.weight"].asnumpy(), weights["transformer.wte.weight"])


def test_released_buffers_are_ignored_and_fp16_bin_is_cast(tmp_path):
    config, mapping, weights = tiny_case("partial")
    raw = {k: torch.from_numpy(v.astype(np.float16)) for k, v in weights.items()}
    raw["transformer.h.0.attn.bias"] = torch.ones(1, 1, 32, 32, dtype=torch.uint8)
    raw["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)
    raw["top_query_layer.attn.bias"] = torch.ones(1, 1, 32, 32, dtype=torch.uint8)
    raw["code_tokens_mask"] = torch.zeros(64)  # the released no-separation model saves zeros: never applied
    raw["doc_tokens_mask"] = torch.zeros(64)
    raw["lm_head.weight"] = raw["transformer.wte.weight"].clone()
    os.makedirs(tmp_path / "rel")
    config.save_hf_json(tmp_path / "rel" / "config.json")
    save_int_map_pickle(tmp_path / "rel" / "replicated_tokens_map.pkl", mapping)
    torch.save(raw, tmp_path / "rel" / "pytorch_model.bin")
    ckpt = read_checkpoint(tmp_path / "rel")
    assert set(ckpt.weights) == set(family_for(config).shapes(config))
    for name, value in weights.items():
        assert ckpt.weights[name].dtype == np.float32
        assert np.array_equal(ckpt.weights[name], value.astype(np.float16).astype(np.float32)), name
    assert ckpt.tokenizer_dir is None and ckpt.separation_map == mapping


def test_bin_export_loads_in_torch_strictly(tmp_path):
    from pangu_codeclm.convert.torch_model import TorchPanguCodeCLM
    config, mapping, weights = tiny_case("none")
    write_hf(tmp_path / "out", config, weights, mapping, write_bin=True)
    state = torch.load(tmp_path / "out" / "pytorch_model.bin", weights_only=True)
    TorchPanguCodeCLM(config).load_state_dict(state, strict=True)
    assert torch.equal(state["transformer.wpe.weight"], torch.from_numpy(weights["transformer.wpe.weight"]))
    assert cli_main(["convert", "--to", "hf", "--bin", "--bin-dtype", "float16", str(tmp_path / "out"),
                     str(tmp_path / "half")]) == 0
    half = torch.load(tmp_path / "half" / "pytorch_model.bin", weights_only=True)
    assert half["transformer.wte.weight"].dtype == torch.float16
    loaded = TorchPanguCodeCLM.from_pretrained(tmp_path / "out")
    assert torch.equal(loaded.top_query_embedding.weight, torch.from_numpy(weights["top_query_embedding.weight"]))


def test_bin_without_torch_names_the_extra(tmp_path, monkeypatch):
    config, _, weights = tiny_case("none")
    os.makedirs(tmp_path / "rel")
    config.save_hf_json(tmp_path / "rel" / "config.json")
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, tmp_path / "rel" / "pytorch_model.bin")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin.*pip install 'pangu-codeclm\[torch\]'"):
        read_checkpoint(tmp_path / "rel")


def test_wrong_shape_missing_and_unexpected_keys_are_named(tmp_path):
    config, _, weights = tiny_case("none")
    bad = dict(weights, **{"transformer.h.1.mlp.c_fc.weight": np.zeros((64, 32), np.float32)})
    with pytest.raises(CheckpointError, match=r"'transformer\.h\.1\.mlp\.c_fc\.weight' has shape \(64, 32\), "
                                              r"expected \(32, 64\)"):
        read_checkpoint(write_raw_hf(tmp_path / "a", config, bad))
    missing = {k: v for k, v in weights.items() if k != "top_query_layer.attn.q_attn.bias"}
    with pytest.raises(CheckpointError, match=r"missing parameter 'top_query_layer\.attn\.q_attn\.bias' "
                                              r"\(expected shape \(32,\)\)"):
        read_checkpoint(write_raw_hf(tmp_path / "b", config, missing))
    extra = dict(weights, **{"transformer.h.2.ln_1.weight": np.ones(32, np.float32)})
    with pytest.raises(CheckpointError, match=r"unexpected parameter 'transformer\.h\.2\.ln_1\.weight'"):
        read_checkpoint(write_raw_hf(tmp_path / "c", config, extra))
    untied = dict(weights, **{"lm_head.weight": weights["transformer.wte.weight"] + 1})
    with pytest.raises(CheckpointError, match="lm_head.weight' differs"):
        read_checkpoint(write_raw_hf(tmp_path / "d", config, untied))


def test_missing_files_and_bad_config(tmp_path):
    config, mapping, weights = tiny_case("partial")
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        read_checkpoint(tmp_path / "nowhere")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="neither pangu_codeclm.json .* nor config.json"):
        read_checkpoint(tmp_path / "empty")
    d = write_raw_hf(tmp_path / "noweights", config, weights, mapping)
    os.remove(d / "model.safetensors")
    with pytest.raises(CheckpointError, match="no weights found: expected model.safetensors or pytorch_model.bin"):
        read_checkpoint(d)
    d = write_raw_hf(tmp_path / "nomap", config, weights)
    with pytest.raises(CheckpointError, match="separation 'partial' but replicated_tokens_map.pkl is missing"):
        read_checkpoint(d)
    d = write_raw_hf(tmp_path / "badcfg", config, weights, mapping)
    (d / "config.json").write_text('{"n_embd": 32,\n "n_layer": }')
    with pytest.raises(ConfigError, match=r"config\.json:2: invalid JSON"):
        read_checkpoint(d)
    d = write_raw_hf(tmp_path / "trunc", config, weights, mapping)
    (d / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="model.safetensors: cannot read safetensors"):
        read_checkpoint(d)
    d = write_raw_hf(tmp_path / "outside", config, weights, {10: 70})
    with pytest.raises(CheckpointError, match=r"replicated_tokens_map\.pkl: separation map value 70 is outside"):
        read_checkpoint(d)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_that_run_code_are_refused(tmp_path):
    config, mapping, weights = tiny_case("partial")
    marker = tmp_path / "pwned"
    d = write_raw_hf(tmp_path / "evilmap", config, weights)
    (d / "replicated_tokens_map.pkl").write_bytes(pickle.dumps({10: 56, 11: _RunsCode(str(marker))}))
    with pytest.raises(ValueError, match=r"replicated_tokens_map\.pkl: unsafe or malformed pickle"):
        read_checkpoint(d)
    os.makedirs(tmp_path / "evilbin")
    config.save_hf_json(tmp_path / "evilbin" / "config.json")
    (tmp_path / "evilbin" / "pytorch_model.bin").write_bytes(pickle.dumps({"x": _RunsCode(str(marker))}, protocol=2))
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: cannot read as a weights-only"):
        read_checkpoint(tmp_path / "evilbin")
    assert not marker.exists()


def test_writes_are_atomic_and_refuse_to_clobber(tmp_path, capsys):
    config, mapping, weights = tiny_case("none")
    bad = dict(weights, **{"transformer.wpe.weight": np.zeros((3, 32), np.float32)})
    with pytest.raises(CheckpointError, match="weights to write: parameter 'transformer.wpe.weight'"):
        write_hf(tmp_path / "out", config, bad)
    assert os.listdir(tmp_path) == []  # nothing half-written, no temp dir left
    write_hf(tmp_path / "out", config, weights)
    with pytest.raises(FileExistsError, match="already exists"):
        write_hf(tmp_path / "out", config, weights)
    assert cli_main(["convert", "--to", "mindspore", str(tmp_path / "out"), str(tmp_path / "out")]) == 1
    assert "already exists" in capsys.readouterr().err
    changed = dict(weights, **{"transformer.ln_f.bias": np.ones(32, np.float32)})
    write_hf(tmp_path / "out", config, changed, overwrite=True)
    assert np.array_equal(read_checkpoint(tmp_path / "out").weights["transformer.ln_f.bias"], np.ones(32))
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_training_checkpoint_file_converts_with_a_config(tmp_path):
    import mindspore as ms
    config, mapping, weights = tiny_case("partial")
    write_mindspore(tmp_path / "base", config, weights, mapping)
    entries = [{"name": "global_step", "data": ms.Tensor(np.array([7], np.int32))}]
    for name, value in weights.items():
        entries.append({"name": "network." + name, "data": ms.Tensor(value)})  # a wrapper prefix
        entries.append({"name": "adam_m.network." + name, "data": ms.Tensor(np.zeros_like(value))})
    ms.save_checkpoint(entries, str(tmp_path / "step_00000007.ckpt"))
    src = str(tmp_path / "step_00000007.ckpt")
    assert cli_main(["convert", "--to", "hf", src, str(tmp_path / "nocfg")]) == 1
    assert cli_main(["convert", "--to", "hf", src, str(tmp_path / "out"), "--config", str(tmp_path / "base")]) == 0
    back = read_checkpoint(tmp_path / "out")
    assert_same_weights(back.weights, weights)
    assert back.separation_map == mapping
    with pytest.raises(CheckpointError, match="separation 'partial' needs the separation map"):
        read_training_checkpoint(src, config)
    smaller = config.replace(num_layers=3)
    with pytest.raises(CheckpointError, match=r"missing parameter 'transformer\.h\.2\.ln_1\.weight'"):
        read_training_checkpoint(src, smaller, tmp_path / "base")


def test_writer_refuses_a_tokenizer_that_disagrees_with_the_model(pangu_vocab_model, tmp_path):
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    tok = PanguTokenizer.from_vocab(pangu_vocab_model)
    config, mapping, weights = tiny_case("partial")
    with pytest.raises(CheckpointError, match=r"tokenizer's separation map \(0 entries\) differs .* \(4 entries\)"):
        write_hf(tmp_path / "a", config, weights, mapping, tok)
    config, _, weights = tiny_case("none")
    with pytest.raises(CheckpointError, match="tokenizer has 32013 ids but the model has 64 embedding rows"):
        write_mindspore(tmp_path / "b", config, weights, {}, tok)
    assert os.listdir(tmp_path) == []
    write_mindspore(tmp_path / "c", config, weights, {})
    tok.save_pretrained(tmp_path / "c")  # a tokenizer dropped in by hand beside a smaller model
    with pytest.raises(CheckpointError, match=r"c: the tokenizer has 32013 ids but the model has 64 embedding rows"):
        read_checkpoint(tmp_path / "c").load_tokenizer()


def test_pytorch_bin_without_torch_is_refused_before_writing(tmp_path, monkeypatch):
    config, _, weights = tiny_case("none")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(CheckpointError, match=r"writing pytorch_model\.bin needs PyTorch; install it with pip"):
        write_hf(tmp_path / "out", config, weights, write_bin=True)
    assert os.listdir(tmp_path) == []


RELEASED_TOKENIZER_FILES = SHARED_DATA / "pangu" / "released_tokenizer_files"
# config.json keys of the released checkpoints; those this project adds (see `PanguCodeCLMConfig.to_hf_dict`)
RELEASED_CONFIG_KEYS = {"architectures", "model_type", "activation_function", "n_embd", "n_layer", "n_head", "n_inner",
                        "n_positions", "n_ctx", "vocab_size", "layer_norm_epsilon", "embd_pdrop", "resid_pdrop",
                        "attn_pdrop", "initializer_range", "scale_attn_weights", "bos_token_id", "eos_token_id",
                        "torch_dtype"}
PROJECT_CONFIG_KEYS = {"separation", "eot_token_id", "pad_token_id", "objective"}


def test_write_refuses_a_map_that_disagrees_with_the_config(tmp_path):
    config, _, _ = tiny_case("none")
    config = config.replace(vocab_size=64007)  # the released full vocabulary, its 31,994-entry map, separation 'none'
    full_map = {i: 32013 + i for i in range(31994)}
    weights = family_for(config).random_weights(config)
    for write in (write_hf, write_mindspore):
        with pytest.raises(CheckpointError, match=r"checkpoint to write: its separation map has 31994 separated "
                                                  r"tokens but the config says separation 'none'"):
            write(tmp_path / "out", config, weights, full_map)
    partial, mapping, weights = tiny_case("partial")
    with pytest.raises(CheckpointError, match=r"the config says separation 'partial' but its separation map is empty"):
        write_hf(tmp_path / "out", partial, weights, {})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("write_bin, bin_dtype, expected", [(False, "float32", "float32"), (True, "float32", "float32"),
                                                            (True, "float16", "float16")])
def test_config_torch_dtype_is_what_was_written(tmp_path, write_bin, bin_dtype, expected):
    config, mapping, weights = tiny_case("none")
    write_hf(tmp_path / "out", config, weights, mapping, write_bin=write_bin, bin_dtype=bin_dtype)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == expected
    if write_bin:
        state = torch.load(tmp_path / "out" / "pytorch_model.bin", weights_only=True)
        assert {str(t.dtype) for t in state.values()} == {f"torch.{expected}"}


@pytest.mark.parametrize("separation", ["none", "full"])
def test_export_is_the_released_format(pangu_vocab_model, tmp_path, separation):
    """The tokenizer files equal the released ones byte for byte; config.json has the released keys and values
    (bos 1, eos 2) plus the project's own; loading the export still takes <eot>/<pad> from the tokenizer."""
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    released = RELEASED_TOKENIZER_FILES / separation
    if not released.is_dir():
        pytest.skip(f"released tokenizer files not found at {released}")
    tok = PanguTokenizer.from_vocab(pangu_vocab_model, separation)
    config, _, _ = tiny_case(separation)
    config = config.replace(vocab_size=tok.vocab_size, eos_token_id=tok.eot_id, pad_token_id=tok.pad_id)
    write_mindspore(tmp_path / "ms", config, family_for(config).random_weights(config), tok.separation_map, tok)
    assert cli_main(["convert", "--to", "hf", str(tmp_path / "ms"), str(tmp_path / "hf")]) == 0
    for name in ("added_tokens.json", "special_tokens_map.json", "tokenizer_config.json"):
        assert (tmp_path / "hf" / name).read_bytes() == (released / name).read_bytes(), name
    written = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert RELEASED_CONFIG_KEYS < set(written) and set(written) - RELEASED_CONFIG_KEYS <= PROJECT_CONFIG_KEYS
    assert (written["bos_token_id"], written["eos_token_id"], written["torch_dtype"]) == (1, 2, "float32")
    assert (written["eot_token_id"], written["pad_token_id"], written["separation"]) == (32001, 32002, separation)
    back = read_checkpoint(tmp_path / "hf")
    assert (back.config.eos_token_id, back.config.pad_token_id) == (tok.eot_id, tok.pad_id) == (32001, 32002)
    assert back.load_tokenizer().separation_map == tok.separation_map


@pytest.mark.parametrize("separation", ["none", "full"])
def test_hf_dir_without_tokenizer_json_files_loads_and_converts(pangu_vocab_model, tmp_path, separation, caplog):
    """config.json, weights, vocab.model and (separated) the map: what a reference training run leaves when its
    tokenizer is not saved. The tokenizer is rebuilt from vocab.model and the config's separation."""
    import shutil
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    tok = PanguTokenizer.from_vocab(pangu_vocab_model, separation)
    config, _, _ = tiny_case(separation)
    config = config.replace(vocab_size=tok.vocab_size)
    src = write_raw_hf(tmp_path / "src", config, family_for(config).random_weights(config), tok.separation_map)
    shutil.copy(pangu_vocab_model, src / "vocab.model")
    with caplog.at_level("INFO", logger="pangu_codeclm.tokenization.pangu"):
        rebuilt = read_checkpoint(src).load_tokenizer()
    assert f"has no added_tokens.json: rebuilt from vocab.model with separation {separation}" in caplog.text
    assert (rebuilt.vocab_size, rebuilt.separation_map) == (tok.vocab_size, tok.separation_map)
    assert rebuilt.encode_code("def f(x): return x") == tok.encode_code("def f(x): return x")
    assert cli_main(["convert", "--to", "mindspore", str(src), str(tmp_path / "ms")]) == 0
    assert (tmp_path / "ms" / "added_tokens.json").read_bytes() == \
        json.dumps(tok._added_ids, ensure_ascii=False).encode("utf-8")
    if separation == "full":  # a map the rebuilt tokenizer does not give is refused, naming it
        save_int_map_pickle(src / "replicated_tokens_map.pkl", {k: v for k, v in list(tok.separation_map.items())[1:]})
        with pytest.raises(ValueError, match=r"no added_tokens\.json, and rebuilding .* does not give the map of "
                                             r"replicated_tokens_map\.pkl \(31993 entries"):
            read_checkpoint(src).load_tokenizer()


# ------------------------------------------------------------------------------------ loading in bounded memory
def _mapped_rss_kb(path):
    """Resident kB of this process's mappings of `path` (/proc/self/smaps)."""
    real, total, inside = os.path.realpath(path), 0, False
    with open("/proc/self/smaps", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
                inside = len(fields) == 6 and fields[5] == real
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


@pytest.mark.parametrize("layout", ["safetensors", "bin16", "bin32"])
def test_checkpoint_weights_are_checked_from_the_header_and_read_on_access(tmp_path, layout):
    config, mapping, weights = tiny_case("partial")
    write_hf(tmp_path / "out", config, weights, mapping, write_bin=layout != "safetensors",
                bin_dtype="float16" if layout == "bin16" else "float32")
    if layout != "safetensors":
        os.remove(tmp_path / "out" / "model.safetensors")
    ckpt = read_checkpoint(tmp_path / "out")
    assert isinstance(ckpt.weights, LazyWeights) and len(ckpt.weights) == len(weights)
    assert weight_shape(ckpt.weights, "transformer.wte.weight") == (64, 32)
    cast = np.float16 if layout == "bin16" else np.float32
    for name, value in weights.items():
        got = ckpt.weights[name]
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.flags.writeable
        assert np.array_equal(got, value.astype(cast).astype(np.float32)), name
    in_memory = {k: v.astype(cast) for k, v in weights.items()}
    assert_same_weights(dict(ckpt.weights), check_weights(in_memory, config, "in memory"))


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc/self/smaps")
def test_bin_pages_are_not_kept_after_a_tensor_is_read(tmp_path):
    """The memory-mapped pytorch_model.bin: a tensor read (copied and cast) leaves none of its file pages resident,
    so loading never holds the file's bytes next to the network's weights."""
    path = tmp_path / "pytorch_model.bin"
    big = torch.arange(2 ** 21, dtype=torch.float16)  # 4 MiB
    torch.save({"big": big, "small": torch.ones(3)}, path)
    tensors = TorchBinFile(str(path))
    assert tensors.mapped, "the file was not memory-mapped"
    value = tensors.read("big", np.float32)
    assert np.array_equal(value, big.float().numpy())
    assert _mapped_rss_kb(path) < 64  # without the madvise all 4096 kB stay resident
    assert np.array_equal(tensors.read("big", np.float32), value)  # dropped pages read back from the file


def test_bf16_legacy_bin_and_bf16_safetensors_read_as_fp32(tmp_path):
    from safetensors.torch import save_file as save_torch
    config, mapping, weights = tiny_case("partial")
    state = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in weights.items()}
    expected = {k: t.float().numpy() for k, t in state.items()}
    for name, write in (("legacy", lambda d: torch.save(state, d / "pytorch_model.bin",
                                                        _use_new_zipfile_serialization=False)),
                        ("st", lambda d: save_torch(state, str(d / "model.safetensors")))):
        d = tmp_path / name
        os.makedirs(d)
        config.save_hf_json(d / "config.json")
        save_int_map_pickle(d / "replicated_tokens_map.pkl", mapping)
        write(d)
        assert_same_weights(dict(read_checkpoint(d).weights), expected)


def test_truncated_or_inconsistent_safetensors_is_refused_before_any_tensor_is_read(tmp_path):
    config, mapping, weights = tiny_case("partial")
    d = write_raw_hf(tmp_path / "cut", config, weights, mapping)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[:-4])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: cannot read safetensors .*tensor '.*': "
                                              r"data_offsets .* do not match its shape .* or the file size"):
        read_checkpoint(d)
    (d / "model.safetensors").write_bytes(b"\xff" * 8 + data[8:])
    with pytest.raises(CheckpointError, match=r"cannot read safetensors .*header length \d+ does not fit"):
        read_checkpoint(d)
    raw = dict(weights, **{"transformer.h.0.mlp.c_fc.bias": np.arange(64, dtype=np.int32)})
    d = write_raw_hf(tmp_path / "int", config, raw, mapping)
    with pytest.raises(CheckpointError, match=r"parameter 'transformer\.h\.0\.mlp\.c_fc\.bias' has dtype I32, "
                                              r"expected a float tensor"):
        read_checkpoint(d)
