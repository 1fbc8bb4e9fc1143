"""Shared test fixtures: paths to ../shared data and a CPU MindSpore context."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def pangu_vocab_model():
    path = SHARED_DATA / "pangu" / "vocab.model"
    if not path.exists():
        pytest.skip(f"released vocab.model not found at {path}")
    return path


@pytest.fixture(scope="session")
def python_tokens_file():
    path = SHARED_DATA / "pangu" / "python_tokens.txt"
    if not path.exists():
        pytest.skip(f"partial token list not found at {path}")
    return path


@pytest.fixture(scope="session")
def mbpp_path():
    path = SHARED_DATA / "mbpp" / "mbpp.jsonl"
    if not path.exists():
        pytest.skip(f"MBPP not found at {path}")
    return path


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
