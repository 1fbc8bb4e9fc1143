"""PanGu-Alpha's native stack as CodeCLM's starting point: a model-zoo checkpoint + the jieba tokenizer, full embedding
separation, prepared data and a run of train.py that starts from the checkpoint (the embedding grows for the added
specials and the code-side twins)."""
import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

from pangu_codeclm import cli
from test_jieba_tokenizer import _records

ROOT = pathlib.Path(__file__).resolve().parents[1]
E, F, HEADS, BLOCKS, SEQ, PIECES = 32, 64, 4, 2, 128, 300
WTE = "transformer.wte.weight"


def _zoo_checkpoint(path, vocab_size):
    """A random fast_gelu PanGu-Alpha written in the model-zoo layout (our layout's weights, returned too)."""
    from pangu_codeclm.checkpoints.modelzoo import write_modelzoo
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.families import family_for
    config = PanguCodeCLMConfig(vocab_size=vocab_size, hidden_size=E, num_layers=BLOCKS, num_heads=HEADS,
                                ffn_hidden_size=F, max_position_embeddings=SEQ, seq_length=SEQ, activation="fast_gelu")
    weights = family_for(config).random_weights(config, seed=5, std=0.2)
    write_modelzoo(str(path), config, weights)
    return weights


def test_model_zoo_checkpoint_and_jieba_tokenizer_start_separated_code_clm_training(tmp_path):
    import mindspore as ms
    records = _records(tmp_path / "records.jsonl", n=600)
    tok_dir = tmp_path / "tok"
    assert cli.main(["tokenizer", "train", "--kind", "jieba", "--records", str(records), "--vocab-size", str(PIECES),
                     "--separation", "full", "--out", str(tok_dir)]) == 0
    from pangu_codeclm.tokenization.registry import load_tokenizer
    tok = load_tokenizer(tok_dir)
    assert type(tok).__name__ == "JiebaTokenizer" and tok.separation == "full"
    assert tok.vocab_size > PIECES + 13                      # pieces, then the CodeCLM specials, then the twins
    zoo = _zoo_checkpoint(tmp_path / "pangu_alpha.ckpt", PIECES)   # the base model knows the pieces only

    assert cli.main(["prepare", "--records", str(records), "--tokenizer", str(tok_dir), "--objective", "code",
                     "--seq-length", str(SEQ), "--out", str(tmp_path / "data"), "--workers", "1", "--quiet"]) == 0
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    assert (meta["separation"], meta["vocab_size"]) == ("full", tok.vocab_size)
    assert (meta["pad_token_id"], meta["eos_token_id"]) == (tok.pad_id, tok.eot_id)   # jieba's, not PanGu's 32002/1

    out = tmp_path / "run"
    args = [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs" / "pangu_codeclm_tiny_cpu.yaml"),
            "--device_target", "CPU", "--output_dir", str(out), "--train_dataset_dir", str(tmp_path / "data"),
            "--set", f"pangu.pretrained={tmp_path / 'pangu_alpha.ckpt'}", "--set", "pangu.train_steps=2",
            "--set", "pangu.save_steps=2", "--set", "pangu.log_steps=1", "--set", "pangu.show_bar=false",
            "--set", "pangu.eval_steps=0", "--set", f"model.model_config.vocab_size={tok.vocab_size}",
            "--set", "model.model_config.separation=full", "--set", "model.model_config.activation=fast_gelu",
            "--set", f"model.model_config.hidden_size={E}", "--set", f"model.model_config.ffn_hidden_size={F}",
            "--set", f"model.model_config.num_heads={HEADS}", "--set", f"model.model_config.num_layers={BLOCKS}",
            "--set", f"model.model_config.seq_length={SEQ}", "--set", f"model.model_config.max_position_embeddings={SEQ}",
            "--set", f"model.model_config.pad_token_id={tok.pad_id}",
            "--set", f"model.model_config.eos_token_id={tok.eot_id}", "--set", "runner_config.batch_size=2", "--set", "lr_schedule.learning_rate=1e-12", "--set", "lr_schedule.lr_end=0",
            "--set", "lr_schedule.warmup_steps=0"]
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "GLOG_v": "3"}, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"expanded {WTE} from {PIECES} to {tok.vocab_size} rows" in proc.stdout + proc.stderr

    ckpts = sorted((out / "checkpoint" / "rank_0").glob("*.ckpt"))
    assert ckpts, f"no checkpoint under {out}"
    trained = {k: v.asnumpy() for k, v in ms.load_checkpoint(str(ckpts[-1])).items()}
    # with a 1e-12 learning rate two steps move nothing measurable: the run started from the model-zoo weights...
    for name, value in zoo.items():
        if name != WTE:
            np.testing.assert_allclose(trained[name], value, atol=1e-6, err_msg=name)
    wte = trained[WTE]
    pieces = [i for i in range(PIECES) if i != tok.pad_id]   # <pad> is a piece of the model; its row is zeroed
    np.testing.assert_allclose(wte[pieces], zoo[WTE][pieces], atol=1e-6)
    # ...and the separation map copied each piece's pretrained row to its code-side twin
    mapping = pickle.loads((tok_dir / "replicated_tokens_map.pkl").read_bytes())
    twins = [(old, new) for old, new in mapping.items() if old < PIECES and old != tok.pad_id]
    assert len(twins) > PIECES // 2
    for old, new in twins:
        np.testing.assert_allclose(wte[new], zoo[WTE][old], atol=1e-6, err_msg=f"twin {new} of piece {old}")
    np.testing.assert_allclose(wte[tok.pad_id], 0, atol=1e-9)          # zeroed (then moved by ~lr)
    from pangu_codeclm.train.callbacks import read_metrics
    rows = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)


def test_a_pretrained_checkpoint_of_another_architecture_is_refused(tmp_path, ms_cpu):
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.families import family_for
    from pangu_codeclm.train.pretrained import load_pretrained
    path = tmp_path / "pangu_alpha.ckpt"
    _zoo_checkpoint(path, PIECES)
    for key, value, found in (("activation", "gelu", "'fast_gelu'"), ("ffn_hidden_size", 2 * F, str(F))):
        values = dict(vocab_size=PIECES + 20, hidden_size=E, num_layers=BLOCKS, num_heads=HEADS, ffn_hidden_size=F,
                      max_position_embeddings=SEQ, seq_length=SEQ, activation="fast_gelu")
        values[key] = value
        config = PanguCodeCLMConfig(**values)
        network = family_for(config).build_network(config)
        with pytest.raises(ValueError, match=rf"pangu_alpha.ckpt: the pretrained modelzoo checkpoint has "
                                             rf"{key}={found} but the run's model_config.{key} is {value!r}"):
            load_pretrained(network, str(path))
