"""Shared test fixtures: paths to ../shared data and a CPU MindSpore context."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"


def shared_file(relative, what):
    """../shared/data/RELATIVE, or skip the test naming `what` when the checkout has no ../shared beside it."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def pangu_vocab_model():
    return shared_file("pangu/vocab.model", "released vocab.model")


@pytest.fixture(scope="session")
def python_tokens_file():
    return shared_file("pangu/python_tokens.txt", "partial token list")


@pytest.fixture(scope="session")
def mbpp_path():
    return shared_file("mbpp/mbpp.jsonl", "MBPP")


@pytest.fixture(scope="session")
def sanitized_path():
    return shared_file("mbpp/sanitized-mbpp.json", "MBPP sanitized")


def tiny_hf_checkpoint(directory, vocab_model, seed=1):
    """A random tiny model (2 blocks, hidden 32, 256 positions) with the released PanGu tokenizer, written in the HF
    layout to `directory`; returns the directory."""
    from pangu_codeclm.checkpoints.hf import write_hf
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.families import family_for
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    tok = PanguTokenizer.from_vocab(vocab_model)
    config = PanguCodeCLMConfig.preset("tiny", vocab_size=tok.vocab_size, hidden_size=32, num_layers=2, num_heads=4,
                                       ffn_hidden_size=64, max_position_embeddings=256, seq_length=256,
                                       pad_token_id=tok.pad_id, eos_token_id=tok.eot_id)
    write_hf(directory, config, family_for(config).random_weights(config, seed=seed, std=0.02), {}, tok)
    return directory


@pytest.fixture(scope="session")
def ms_cpu():
    """Set MindSpore to GRAPH mode on CPU once per session."""
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    return ms


def reference_rows(name):
    """The JSON lines of ../shared/data/reference/NAME (the reference's own outputs); skips when it is missing."""
    import json
    path = SHARED_DATA / "reference" / name
    if not path.exists():
        pytest.skip(f"reference fixture not found at {path}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def random_network(seed=0, **dims):
    """A tiny PanguCodeCLMForCausalLM with N(0, 0.1) weights, small biases and LayerNorm gains near 1 (keeps greedy
    outputs varied); `dims` are PanguCodeCLMConfig keys."""
    import mindspore as ms
    import numpy as np
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.model import NON_HF_PARAMETERS, PanguCodeCLMForCausalLM
    network = PanguCodeCLMForCausalLM(PanguCodeCLMConfig(**dims))
    rng = np.random.default_rng(seed)
    for name, param in network.parameters_and_names():
        if name not in NON_HF_PARAMETERS:
            value = rng.normal(0, 0.1, param.shape)
            if name.endswith("bias"):
                value *= 0.1
            elif ".ln_" in name:
                value = 1 + 0.1 * value
            param.set_data(ms.Tensor(value.astype(np.float32)))
    return network


@pytest.fixture(autouse=True)
def _run_in_tmp_cwd(tmp_path, monkeypatch):
    """Run each test in its own directory, so mindformers' ./output logs and stray files stay out of the repo."""
    monkeypatch.chdir(tmp_path)
    yield
