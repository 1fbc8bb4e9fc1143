"""Sharding strategies: every sharded primitive's stored in-strategy fits the shapes it really sees and the config.

The network runs once in PyNative mode with each primitive wrapped to record its input shapes (no semi-auto parallel,
which the CPU backend refuses); then each strategy is checked: one split per axis, every axis divisible by its split,
splits drawn from dp/mp with a product <= dp*mp, and the column/row/vocabulary layouts the config asks for.
"""
import numpy as np
import pytest
from mindspore.ops.primitive import Primitive

from pangu_codeclm.config import PanguCodeCLMConfig
from pangu_codeclm.model.parallel import Strategies, stage_of_layer

DP, MP = 2, 4
# ops that carry no strategy of their own (layout changes, dtype casts, shape queries)
UNSHARDED = {"Reshape", "Cast", "Shape", "ExpandDims", "Squeeze", "RealDiv", "Maximum", "Stack"}
MUST_SHARD = {"MatMul", "BatchMatMul", "Gather", "Softmax", "LayerNorm", "Add", "Sub", "Mul", "Erf", "Exp", "Log",
              "Transpose", "Split", "StridedSlice", "ReduceMax", "ReduceSum", "OneHot", "NotEqual", "Dropout", "Concat"}


def parallel_config(vocab_emb_dp, pipeline_stage=1, recompute=False):
    return PanguCodeCLMConfig(vocab_size=256, hidden_size=64, num_heads=4, ffn_hidden_size=256, num_layers=3,
                              max_position_embeddings=16, seq_length=8, batch_size=2,
                              parallel=dict(data_parallel=DP, model_parallel=MP, pipeline_stage=pipeline_stage,
                                            micro_batch_num=max(pipeline_stage, 1), vocab_emb_dp=vocab_emb_dp,
                                            recompute=recompute))


class Recorder:
    """Stands in for a primitive attribute and records the shapes of its tensor inputs."""

    def __init__(self, prim, owner, attr, log):
        self.prim, self.where, self.log = prim, f"{owner}.{attr}", log

    def __call__(self, *args):
        shapes = [tuple(a.shape) if hasattr(a, "shape") else None for a in args]
        self.log.append((self.where, self.prim, shapes))
        return self.prim(*args)


def record_primitive_calls(net, run):
    log, swapped = [], []
    for cell_name, cell in net.cells_and_names():
        for attr, prim in list(vars(cell).items()):
            if isinstance(prim, Primitive):
                object.__setattr__(cell, attr, Recorder(prim, cell_name or "<net>", attr, log))
                swapped.append((cell, attr, prim))
    try:
        run()
    finally:
        for cell, attr, prim in swapped:
            object.__setattr__(cell, attr, prim)
    return log


@pytest.fixture(scope="module", params=[True, False], ids=["vocab_emb_dp", "vocab-parallel"])
def calls(request, ms_cpu):
    import mindspore as ms
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    cfg = parallel_config(request.param)
    cfg.validate_parallel(DP * MP)
    net = PanguCodeCLMForCausalLM(cfg, separation_map={3: 200, 4: 201})
    net.set_train(True)
    b, t = cfg.batch_size, cfg.seq_length
    ids = ms.Tensor(np.arange(b * t, dtype=np.int32).reshape(b, t))
    docstr = ms.Tensor(np.tile(np.array([1, 1, 1, 0, 0, 0, 0, 0], np.int32), (b, 1)))
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        log = record_primitive_calls(net, lambda: net(ids, labels=ids, attention_mask=ms.Tensor(
            np.ones((b, t, t), np.float32)), docstr_mask=docstr, prefix_lm_mask=ms.Tensor(np.zeros((b, t, t),
                                                                                             np.float32))))
        log += record_primitive_calls(net, lambda: net(ids, attention_mask=ms.Tensor(np.ones((b, t), np.float32))))
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)
    return cfg, net, log


def test_every_strategy_fits_the_shapes_and_the_device_count(calls):
    cfg, _, log = calls
    assert len(log) > 100
    checked = 0
    for where, prim, shapes in log:
        name = prim.name
        if name in UNSHARDED:
            continue
        strategy = prim.attrs.get("in_strategy")
        assert name in MUST_SHARD, f"{where}: unexpected primitive {name}; classify it"
        assert strategy is not None, f"{where} ({name}) has no sharding strategy"
        for i, (split, shape) in enumerate(zip(strategy, shapes)):
            if name == "OneHot" and i == 0:
                shape = shape + (cfg.vocab_size,)  # OneHot's strategy describes its output
            if shape is None or split == ():
                assert split == () or shape is None, f"{where}: strategy {split} for a scalar input"
                continue
            assert len(split) == len(shape), f"{where} ({name}) input {i}: strategy {split} for shape {shape}"
            for axis, (n, s) in enumerate(zip(shape, split)):
                assert s in (1, DP, MP), f"{where}: split {s} is neither dp nor mp"
                assert n % s == 0, f"{where} ({name}) input {i} axis {axis}: {n} not divisible by {s}"
            assert int(np.prod(split)) <= DP * MP, f"{where}: {split} uses more than {DP * MP} devices"
            checked += 1
    assert checked > 100


def test_column_row_embedding_and_loss_layouts(calls):
    cfg, net, _ = calls
    block = net.transformer.h[0]
    column = ((DP, 1), (1, MP))
    row = ((DP, MP), (MP, 1))
    for linear in (block.attn.c_attn, block.mlp.c_fc, net.top_query_layer.attn.q_attn,
                   net.top_query_layer.attn.c_attn):
        assert linear.matmul.in_strategy == column
    for linear in (block.attn.c_proj, block.mlp.c_proj, net.top_query_layer.attn.c_proj):
        assert linear.matmul.in_strategy == row
    assert block.attn.core.softmax.in_strategy == ((DP, MP, 1, 1),)
    assert block.attn.core.qk.in_strategy == ((DP, MP, 1, 1), (DP, MP, 1, 1))
    if cfg.parallel["vocab_emb_dp"]:
        assert net.transformer.wte.gather.in_strategy == ((1, 1), (DP, 1))
        assert net.head.in_strategy == ((DP, 1), (1, 1))
        assert net.loss.exp.in_strategy == ((DP, 1),)
    else:
        assert net.transformer.wte.gather.in_strategy == ((MP, 1), (DP, 1))
        assert net.head.in_strategy == ((DP, 1), (MP, 1))
        assert net.loss.exp.in_strategy == ((DP, MP),)
        assert net.loss.side_sums.in_strategy == ((DP, MP), (MP, 1))  # per-side sums reduce over the split vocab


def test_300m_dimensions_divide_the_splits():
    """The same layouts on the released 300m shapes (B=8, T=1024, replicated vocabulary): every split axis divides."""
    cfg = PanguCodeCLMConfig.preset("300m", batch_size=8, parallel=dict(data_parallel=DP, model_parallel=MP))
    cfg.validate_parallel(DP * MP)
    s = Strategies.from_config(cfg)
    n, e, f, h = cfg.batch_size * cfg.seq_length, cfg.hidden_size, cfg.ffn_hidden_size, cfg.num_heads
    d = e // h
    cases = [(s.linear("column")[0], [(n, e), (e, 3 * e)]), (s.linear("column")[0], [(n, e), (e, 4 * e)]),
             (s.linear("row")[0], [(n, f), (f, e)]), (s.layernorm(), [(n, e), (e,), (e,)]),
             ((s.heads, s.heads), [(cfg.batch_size, h, cfg.seq_length, d)] * 2),
             (s.token_embedding(), [(cfg.vocab_size, e), (cfg.batch_size, cfg.seq_length)]),
             (s.head(), [(n, e), (cfg.vocab_size, e)]), ((s.vocab2d,), [(n, cfg.vocab_size)])]
    for strategy, shapes in cases:
        for split, shape in zip(strategy, shapes):
            assert all(dim % k == 0 for dim, k in zip(shape, split)), (strategy, shapes)
    with pytest.raises(Exception, match="vocab_size"):  # 32013 rows cannot be split over mp=4
        PanguCodeCLMConfig.preset("300m", batch_size=8, parallel=dict(
            data_parallel=DP, model_parallel=MP, vocab_emb_dp=False), vocab_size=32013).validate_parallel(DP * MP)


def test_pipeline_stages_and_recompute(ms_cpu):
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    cfg = parallel_config(True, pipeline_stage=2, recompute=True)
    net = PanguCodeCLMForCausalLM(cfg)
    stages = [block.pipeline_stage for block in net.transformer.h]
    assert stages == [stage_of_layer(i, 3, 2) for i in range(3)] == [0, 0, 1]
    assert net.transformer.wte.pipeline_stage == 0
    assert net.top_query_layer.pipeline_stage == 1 and net.transformer.ln_f.pipeline_stage == 1
    assert all(block._recompute_cell is not None for block in net.transformer.h)
    plain = PanguCodeCLMForCausalLM(parallel_config(True))
    assert all(block._recompute_cell is None for block in plain.transformer.h)
