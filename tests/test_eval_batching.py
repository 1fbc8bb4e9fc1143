"""Generation batches: paper mode equals the reference's MyCollate batches (fixture batch_index, batch_padded_length,
left_padding, collated_prefix_lm_mask; budget 1024 − padded length, G4/G5); corrected mode's length-sorted batches
give the same greedy ids as one prompt at a time; generate_samples passes and records what the mode says."""
import json
import types

import numpy as np
import pytest

from conftest import reference_rows
from pangu_codeclm.evaluation import batching, generation, problems, prompts
from pangu_codeclm.evaluation.settings import EvaluationError, Settings
from test_prefix_generate import net  # noqa: F401 (the tiny random model fixture)
from test_prompts import FakeTokenizer

FIXTURES = ("problems_humaneval_x.jsonl", "problems_mbpp_test.jsonl", "incremental_humaneval_x.jsonl",
            "incremental_mbpp_test.jsonl")
PAD_ID, MAX_LENGTH, BATCH = 32002, 1024, 16  # <pad>; geneval.sh's max_length and BS


@pytest.mark.parametrize("name", FIXTURES)
def test_paper_batches_equal_the_reference_collation(name):
    rows = reference_rows(name)
    tasks = [{"task_id": r["task_id"]} for r in rows]
    lengths = {r["task_id"]: len(r["encoded_prompt_none"]) for r in rows}
    order = batching.generation_rows(tasks, 2, "paper", lengths)  # dataset order, one round per sample
    assert [t["task_id"] for t, _ in order] == [r["task_id"] for r in rows] * 2
    assert [i for _, i in order] == [0] * len(rows) + [1] * len(rows)
    for b in range(0, len(rows), BATCH):
        chunk = rows[b:b + BATCH]
        prompt_ids = [r["encoded_prompt_none"] for r in chunk]
        paper = batching.collate(prompt_ids, [r["prefix_lm_mask"] for r in chunk], PAD_ID, "paper", MAX_LENGTH,
                                 MAX_LENGTH)
        assert {r["batch_index"] for r in chunk} == {b // BATCH}
        assert {r["batch_padded_length"] for r in chunk} == {paper.padded_length}
        assert paper.left_padding.tolist() == [r["left_padding"] for r in chunk]
        assert paper.prefix_index.tolist() == [r["collated_prefix_lm_mask"] for r in chunk]  # G4: not shifted
        assert paper.budgets.tolist() == [MAX_LENGTH - paper.padded_length] * len(chunk)  # G5
        assert (paper.input_ids[paper.attention_mask == 0] == PAD_ID).all()
        assert [r["collated_prompt_length"] for r in chunk] == [
            r["prompt_length"] + pad for r, pad in zip(chunk, paper.left_padding)]
        corrected = batching.collate(prompt_ids, [r["prefix_lm_mask"] for r in chunk], PAD_ID, "corrected",
                                     MAX_LENGTH, MAX_LENGTH)
        tokens = [r["encoded_prompt_tokens_none"][r["prefix_lm_mask"]] for r in chunk]
        assert tokens == ["<python>"] * len(chunk)  # the prefix index is <python>'s in the unpadded prompt
        python = [corrected.input_ids[r, i] for r, i in enumerate(corrected.prefix_index)]
        assert python == [ids[r["prefix_lm_mask"]] for ids, r in zip(prompt_ids, chunk)]
        assert corrected.budgets.tolist() == [MAX_LENGTH - len(ids) for ids in prompt_ids]


def test_corrected_rows_are_sorted_by_length_and_the_mode_is_checked():
    tasks = [{"task_id": t} for t in "abcd"]
    rows = batching.generation_rows(tasks, 2, "corrected", {"a": 5, "b": 3, "c": 9, "d": 3})
    assert [(t["task_id"], i) for t, i in rows] == [("b", 0), ("b", 1), ("d", 0), ("d", 1), ("a", 0), ("a", 1),
                                                    ("c", 0), ("c", 1)]
    with pytest.raises(ValueError, match="unknown mode 'strict'"):
        batching.collate([[1]], [0], 0, "strict", 10, 10)
    assert batching.generated_ids([4, 5, 3, 0, 0], 10, 3) == [4, 5, 3]
    assert batching.generated_ids([4, 5, 6, 7], 3, 3) == [4, 5, 6]


def test_length_sorted_batches_give_the_greedy_ids_of_one_prompt_at_a_time(net):
    """Corrected mode: each row's own budget and shifted prefix, so its ids do not depend on its batch."""
    from test_prefix_generate import BUCKETS, MAX_POS, PAD, prompts as prefix_prompts
    from pangu_codeclm.infer.generate import generate
    rows, python_at = prefix_prompts()

    def run(indices):
        batch = batching.collate([rows[i] for i in indices], [python_at[i] for i in indices], PAD, "corrected",
                                 MAX_POS, 100)
        out = generate(net, batch.input_ids, batch.attention_mask, max_new_tokens=int(batch.budgets.max()),
                       prefix_index=batch.prefix_index, **BUCKETS)
        return [batching.generated_ids(out[r, batch.padded_length:], int(batch.budgets[r]), None)
                for r in range(len(indices))]

    together = run([0, 1, 2])
    assert [len(ids) for ids in together] == [MAX_POS - len(r) for r in rows]  # each row's own budget
    assert together == [run([i])[0] for i in range(3)]
    paper = batching.collate(rows, python_at, PAD, "paper", MAX_POS, 100)
    assert paper.budgets.tolist() == [MAX_POS - 12] * 3  # paper: the padded batch bounds every row


class RecordingModel:
    """A stand-in with `.config.objective` that records each generate call and answers `7 7 <eot>` + padding."""

    def __init__(self, objective):
        self.tokenizer = FakeTokenizer()
        self.config = types.SimpleNamespace(objective=objective)
        self.calls = []

    def generate(self, input_ids, attention_mask=None, max_new_tokens=0, eos_token_id=None, pad_token_id=None,
                 prefix_index=None, **_):
        self.calls.append(dict(ids=np.asarray(input_ids), mask=np.asarray(attention_mask),
                               max_new_tokens=max_new_tokens, prefix_index=prefix_index))
        new = np.full((len(input_ids), max_new_tokens), pad_token_id)
        new[:, :3] = [17, 17, eos_token_id]
        return np.concatenate([np.asarray(input_ids), new], 1)


@pytest.mark.parametrize("mode", ["paper", "corrected"])
def test_generate_samples_batches_budgets_and_prefix(tmp_path, mode):
    probs = problems.load_problems("humaneval", limit=5, mode=mode)
    tasks = prompts.build_tasks(probs, mode)
    prefixes = {p["task_id"]: "" for p in probs}
    model = RecordingModel("prefix_code")
    settings = Settings(mode=mode, batch_size=2, max_length=5000, max_new_tokens=5000)
    assert generation.generate_samples(model, tasks, settings, tmp_path / "s.jsonl", prefixes, progress=False) == 5
    encoded = [prompts.encode_prompt(model.tokenizer, t) for t in tasks]
    order = list(range(5)) if mode == "paper" else sorted(range(5), key=lambda i: len(encoded[i][0]))
    assert len(model.calls) == 3
    for call, members in zip(model.calls, (order[0:2], order[2:4], order[4:])):
        width = max(len(encoded[i][0]) for i in members)
        assert call["ids"].shape == (len(members), width)
        for row, i in enumerate(members):
            ids, python_at = encoded[i]
            assert call["ids"][row, width - len(ids):].tolist() == ids
            shift = 0 if mode == "paper" else width - len(ids)  # G4 in paper mode
            assert call["prefix_index"][row] == python_at + shift
        shortest = min(len(encoded[i][0]) for i in members)
        assert call["max_new_tokens"] == 5000 - (width if mode == "paper" else shortest)
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in records] == [tasks[i]["task_id"] for i in order]
    eot = model.tokenizer.eot_id
    assert all(r["generated_ids"] == [17, 17, eot] and r["prefix_lm"] is True for r in records)
    # resume: a lost line of the first batch regenerates that whole batch but writes only the missing sample
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    (tmp_path / "s.jsonl").write_text("\n".join(lines[1:]) + "\n")
    model.calls.clear()
    assert generation.generate_samples(model, tasks, settings, tmp_path / "s.jsonl", prefixes, progress=False) == 1
    assert len(model.calls) == 1 and model.calls[0]["ids"].shape[0] == 2
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("objective, setting, expected", [("code", "auto", False), ("prefix_code", "off", False),
                                                          ("code", "on", True)])
def test_prefix_lm_setting_decides_what_generate_gets(tmp_path, objective, setting, expected):
    probs = problems.load_problems("humaneval", limit=2, mode="corrected")
    model = RecordingModel(objective)
    settings = Settings(mode="corrected", batch_size=2, max_length=5000, max_new_tokens=4, prefix_lm=setting)
    generation.generate_samples(model, prompts.build_tasks(probs, "corrected"), settings, tmp_path / "s.jsonl",
                             {p["task_id"]: "" for p in probs}, progress=False)
    assert (model.calls[0]["prefix_index"] is not None) == expected
    assert model.calls[0]["max_new_tokens"] == 4
    with pytest.raises(EvaluationError, match="prefix_lm: expected one of"):
        Settings(prefix_lm="yes").validate()


def test_prefix_model_through_both_clis(tmp_path, pangu_vocab_model, capsys):
    """A tiny random `prefix_code` checkpoint: `evaluate` (auto) and `generate --prefix-lm on` run the prefix path."""
    from pangu_codeclm.cli import main
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.checkpoints.hf import write_hf
    from pangu_codeclm.families import family_for
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    tok = PanguTokenizer.from_vocab(pangu_vocab_model)
    config = PanguCodeCLMConfig.preset("tiny", vocab_size=tok.vocab_size, hidden_size=32, num_layers=2, num_heads=4,
                                       ffn_hidden_size=64, max_position_embeddings=256, seq_length=256,
                                       pad_token_id=tok.pad_id, eos_token_id=tok.eot_id, objective="prefix_code")
    write_hf(tmp_path / "ckpt", config, family_for(config).random_weights(config, seed=1, std=0.02), {}, tok)
    out = tmp_path / "run"
    assert main(["evaluate", "--model", str(tmp_path / "ckpt"), "--dataset", "humaneval", "--mode", "paper",
                 "--limit", "2", "--batch-size", "2", "--max-new-tokens", "5", "--workers", "1", "--out", str(out),
                 "--quiet"]) == 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["task_id"] for s in samples] == ["HumanEval/0", "HumanEval/1"]  # dataset order
    assert all(s["prefix_lm"] is True and 0 < len(s["generated_ids"]) <= 5 for s in samples)
    assert json.loads((out / "summary.json").read_text())["settings"]["prefix_lm"] == "auto"
    capsys.readouterr()
    assert main(["generate", "--model", str(tmp_path / "ckpt"), "--prompt", "Add two numbers.", "--signature",
                 "def add(a, b):", "--max-new-tokens", "4", "--prefix-lm", "on"]) == 0
    assert capsys.readouterr().out.startswith("def add(a, b):")


class BatchesOnly:
    """The same model without `generate_many`: generate_samples falls back to padded batches."""

    def __init__(self, model):
        self.tokenizer, self.config, self.generate = model.tokenizer, model.config, model.generate


class ContinuousOnly:
    """The same model with only `generate_many`, recording its calls (a padded-batch call would fail)."""

    def __init__(self, model):
        self.tokenizer, self.config, self.model, self.calls = model.tokenizer, model.config, model, []

    def generate_many(self, prompts, **kwargs):
        self.calls.append(dict(kwargs, prompts=prompts))
        return self.model.generate_many(prompts, **kwargs)


@pytest.mark.parametrize("objective", ["code", "prefix_code"])
def test_continuous_batching_in_the_harness_gives_the_records_of_padded_batches(tmp_path, pangu_vocab_model,
                                                                                objective):
    """Corrected greedy evaluation through generate_many (slots refilled as rows finish) writes the same records as
    length-sorted padded batches; the prefix index and each row's budget go with it."""
    import pangu_codeclm
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.checkpoints.hf import write_hf
    from pangu_codeclm.families import family_for
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    tok = PanguTokenizer.from_vocab(pangu_vocab_model)
    config = PanguCodeCLMConfig.preset("tiny", vocab_size=tok.vocab_size, hidden_size=32, num_layers=2, num_heads=4,
                                       ffn_hidden_size=64, max_position_embeddings=256, seq_length=256,
                                       pad_token_id=tok.pad_id, eos_token_id=tok.eot_id, objective=objective)
    write_hf(tmp_path / "ckpt", config, family_for(config).random_weights(config, seed=5, std=0.05), {}, tok)
    model = pangu_codeclm.from_pretrained(tmp_path / "ckpt")
    probs = problems.load_problems("humaneval", limit=5, mode="corrected")
    tasks = prompts.build_tasks(probs, "corrected")
    prefixes = {p["task_id"]: "" for p in probs}
    settings = Settings(mode="corrected", batch_size=2, max_length=256, max_new_tokens=12)
    records = {}
    continuous = ContinuousOnly(model)
    for name, runner in (("continuous", continuous), ("batches", BatchesOnly(model))):
        path = tmp_path / f"{name}.jsonl"
        assert generation.generate_samples(runner, tasks, settings, path, prefixes, progress=False) == 5
        records[name] = {r["task_id"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert records["continuous"] == records["batches"]
    (call,) = continuous.calls
    assert call["batch_size"] == 2 and call["max_new_tokens"] == [12] * 5
    python_at = [prompt.index(tok.python_id) for prompt in call["prompts"]]
    assert call["prefix_index"] == (python_at if objective == "prefix_code" else None)
