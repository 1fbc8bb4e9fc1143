"""Sharding strategies derived from `config.parallel` (semi-auto parallel); ignored in standalone runs.

Layouts (splits per tensor axis) used by the network:
  hidden  [B*T, E]      (dp, 1)          inner  [B*T, F or 3E] (dp, mp)
  heads   [B, H, T, D]  (dp, mp, 1, 1)   bthd   [B, T, H, D]   (dp, 1, mp, 1)
  mask    [B, 1, T, T]  (dp, 1, 1, 1)    vocab  [B*T, V]       (dp, mp) unless vocab_emb_dp
Column-parallel linears (QKV, q_attn, FC1) split the output features over mp; row-parallel ones (projections) split the
input features. The embedding table is replicated (`vocab_emb_dp`) or split over the vocabulary; the loss is split over
the vocabulary. Each block gets a pipeline stage; `recompute` marks the blocks for recomputation.
"""


class Strategies:
    """Per-op strategies for one parallel config (data_parallel dp, model_parallel mp)."""

    def __init__(self, parallel):
        self.dp = int(parallel["data_parallel"])
        self.mp = int(parallel["model_parallel"])
        self.vocab_emb_dp = bool(parallel["vocab_emb_dp"])
        dp, mp = self.dp, self.mp
        self.hidden = (dp, 1)
        self.inner = (dp, mp)
        self.heads = (dp, mp, 1, 1)
        self.bthd = (dp, 1, mp, 1)
        self.mask = (dp, 1, 1, 1)
        self.rows = (dp, 1)            # [B, T] ids, labels, masks
        self.tokens = (dp,)            # [B*T] per-token values in the loss
        self.vocab2d = (dp, mp) if not self.vocab_emb_dp else (dp, 1)  # [B*T, V] logits in the loss

    @classmethod
    def from_config(cls, config):
        return cls(config.parallel)

    def layernorm(self):
        """ops.LayerNorm on [B*T, E] with gamma/beta [E]."""
        return (self.hidden, (1,), (1,))

    def linear(self, kind):
        """(MatMul, bias Add) strategies for a Conv1D: 'column' splits outputs, 'row' splits inputs over mp."""
        dp, mp = self.dp, self.mp
        if kind == "column":
            return ((dp, 1), (1, mp)), ((dp, mp), (mp,))
        if kind == "row":
            return ((dp, mp), (mp, 1)), ((dp, 1), (1,))
        raise ValueError(f"linear kind must be 'column' or 'row', got {kind!r}")

    def token_embedding(self):
        """Gather(wte [V,E], ids [B,T]): replicated table (vocab_emb_dp) or split over the vocabulary."""
        if self.vocab_emb_dp:
            return ((1, 1), (self.dp, 1))
        return ((self.mp, 1), (self.dp, 1))

    def position_embedding(self):
        """Gather(wpe or top_query_embedding [P,E], positions [B,T]): table replicated."""
        return ((1, 1), (self.dp, 1))

    def head(self):
        """MatMul(h [B*T,E], wte [V,E]^T): logits split over the vocabulary unless vocab_emb_dp."""
        if self.vocab_emb_dp:
            return ((self.dp, 1), (1, 1))
        return ((self.dp, 1), (self.mp, 1))


def stage_of_layer(index, num_layers, pipeline_stage):
    """Pipeline stage of ordinary block `index` (0-based) when num_layers blocks + the top layer share the stages."""
    total = num_layers + 1
    return min(index * pipeline_stage // total, pipeline_stage - 1)


def apply_pipeline_and_recompute(network, config):
    """Give embeddings stage 0, each block its stage, ln_f/top layer/head the last; mark blocks for recompute."""
    parallel = config.parallel
    pp = parallel["pipeline_stage"]
    transformer = network.transformer
    if pp > 1:
        transformer.wte.pipeline_stage = 0
        transformer.wpe.pipeline_stage = 0
        for i, block in enumerate(transformer.h):
            block.pipeline_stage = stage_of_layer(i, config.num_layers, pp)
        transformer.ln_f.pipeline_stage = pp - 1
        network.top_query_embedding.pipeline_stage = pp - 1
        network.top_query_layer.pipeline_stage = pp - 1
        network.loss.pipeline_stage = pp - 1
    if parallel["recompute"]:
        for block in transformer.h:
            block.recompute()
        network.top_query_layer.recompute()
