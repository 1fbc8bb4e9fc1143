"""A compact PyTorch PanGu-Alpha CodeCLM with the released HF key layout, for exported weights.

Keys: `transformer.{wte,wpe}.weight`, `transformer.h.{i}.{ln_1,attn.c_attn,attn.c_proj,ln_2,mlp.c_fc,mlp.c_proj}.*`,
`transformer.ln_f.*`, `top_query_embedding.weight`, `top_query_layer.{ln_1,attn.q_attn,attn.c_attn,attn.c_proj,ln_2,
mlp.c_fc,mlp.c_proj}.*`. Conv1D weights are (in, out); the head is tied to `wte` (no `lm_head.weight`).

The released checkpoints also carry `code_tokens_mask` / `doc_tokens_mask` buffers; here they are *non-persistent*
buffers derived from the separation map (the saved ones are ignored on import and never exported: the no-separation
model's saved masks are all zeros and must not be applied). So `state_dict()` holds exactly the parameters above and
`load_state_dict(strict=True)` accepts exactly what `pangu_codeclm.checkpoints.hf` exports.

Dropout (the config's rates) acts in `train()` mode only. Semantics follow the reference: exact GELU, scores/√d,
masked scores *set to* −1e4 (not −inf); a 2-D padding mask adds (1−m)·(−1e4) after the causal fill; a 3-D mask is the
may-attend matrix used as given; a prefix-LM mask ([B,T,T] may-attend block, or [B] index of the last prefix position)
is ORed into the may-attend matrix.
"""
import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..sample_format import IGNORE_INDEX
from ..separation import modality_vocab_masks

MASKED_SCORE = -1e4


class Conv1D(nn.Module):
    """GPT-2 style linear layer: weight stored (in, out)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


class MLP(nn.Module):
    def __init__(self, hidden, ffn, dropout=0.0):
        super().__init__()
        self.c_fc = Conv1D(hidden, ffn)
        self.c_proj = Conv1D(ffn, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="none")))


class Attention(nn.Module):
    """Self-attention (`c_attn` [E,3E]) or, with `query_proj=True`, the top layer's (`q_attn` [E,E] + `c_attn` [E,2E])."""

    def __init__(self, hidden, heads, query_proj=False, attention_dropout=0.0, hidden_dropout=0.0):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.attn_dropout = nn.Dropout(attention_dropout)
        self.resid_dropout = nn.Dropout(hidden_dropout)
        if query_proj:
            self.q_attn = Conv1D(hidden, hidden)
        self.c_attn = Conv1D(hidden, (2 if query_proj else 3) * hidden)
        self.c_proj = Conv1D(hidden, hidden)

    def _split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, allowed, adder, query=None):
        if query is None:
            q, k, v = self.c_attn(x).split(x.shape[-1], dim=-1)
        else:
            q = self.q_attn(query)
            k, v = self.c_attn(x).split(x.shape[-1], dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = torch.where(allowed, scores, torch.tensor(MASKED_SCORE, dtype=scores.dtype))
        if adder is not None:
            scores = scores + adder
        out = torch.matmul(self.attn_dropout(torch.softmax(scores, dim=-1)), v)
        b, _, t, _ = out.shape
        return self.resid_dropout(self.c_proj(out.transpose(1, 2).reshape(b, t, -1)))


class Block(nn.Module):
    def __init__(self, config, top=False):
        super().__init__()
        e = config.hidden_size
        self.ln_1 = nn.LayerNorm(e, eps=config.layernorm_epsilon)
        self.attn = Attention(e, config.num_heads, top, config.attention_dropout, config.hidden_dropout)
        self.ln_2 = nn.LayerNorm(e, eps=config.layernorm_epsilon)
        self.mlp = MLP(e, config.ffn_hidden_size, config.hidden_dropout)

    def forward(self, x, allowed, adder, query=None):
        x = x + self.attn(self.ln_1(x), allowed, adder, query)
        return x + self.mlp(self.ln_2(x))


class Backbone(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.wpe = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.h = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.drop = nn.Dropout(config.embedding_dropout)


def padded_position_ids(attention_mask):
    """Position ids of a left-padded batch: cumsum(mask)−1, padding set to 1 (as the reference generation)."""
    mask = attention_mask.long()
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


def attention_inputs(attention_mask, prefix_lm_mask, batch, length):
    """(allowed [B,1,T,T] bool, adder [B,1,1,T] or None) for the three mask forms."""
    if attention_mask is not None and attention_mask.dim() == 3:
        allowed = attention_mask.bool()
    else:
        allowed = torch.ones(length, length, dtype=torch.bool).tril().expand(batch, length, length)
    if prefix_lm_mask is not None:
        if prefix_lm_mask.dim() == 3:
            prefix = prefix_lm_mask.bool()
        else:  # index of the last prefix position per row: every query may see keys up to it
            prefix = (torch.arange(length)[None, None, :] <= prefix_lm_mask.long()[:, None, None]).expand(
                batch, length, length)
        allowed = allowed | prefix
    adder = None
    if attention_mask is not None and attention_mask.dim() == 2:
        adder = ((1.0 - attention_mask.float()) * MASKED_SCORE)[:, None, None, :]
    return allowed[:, None, :, :], adder


class TorchPanguCodeCLM(nn.Module):
    """PanGu-Alpha + top query layer with tied output head; see the module docstring for the layout."""

    def __init__(self, config, separation_map=None):
        super().__init__()
        self.config = config
        self.transformer = Backbone(config)
        self.top_query_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.top_query_layer = Block(config, top=True)
        self.register_buffer("code_tokens_mask", torch.ones(config.vocab_size), persistent=False)
        self.register_buffer("doc_tokens_mask", torch.ones(config.vocab_size), persistent=False)
        self.set_separation_map(separation_map or {})
        self._init_weights()

    def _init_weights(self):
        std = self.config.initializer_range
        for name, param in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(param)
            elif ".ln_" in name or name.startswith("transformer.ln_f"):
                nn.init.ones_(param)
            else:
                nn.init.normal_(param, std=std)

    @classmethod
    def from_pretrained(cls, directory):
        """Load a checkpoint of any readable format (checked by `pangu_codeclm.checkpoints`; released buffers
        dropped); only the exact-gelu network runs here."""
        from ..checkpoints import read_checkpoint
        ckpt = read_checkpoint(directory)
        if ckpt.config.activation != "gelu":
            raise ValueError(f"{directory}: activation {ckpt.config.activation!r}; this PyTorch module runs the exact "
                             f"'gelu' of the HF layout only")
        model = cls(ckpt.config, ckpt.separation_map)
        model.load_state_dict(state_dict_from_numpy(ckpt.weights), strict=True)
        return model.eval()

    def set_separation_map(self, separation_map):
        """Set code/text output vocabularies from the map; an empty map restricts nothing."""
        self.separation_map = dict(separation_map)
        code, text = modality_vocab_masks(self.separation_map, self.config.vocab_size)
        self.code_tokens_mask.copy_(torch.from_numpy(code))
        self.doc_tokens_mask.copy_(torch.from_numpy(text))

    def forward(self, input_ids, attention_mask=None, position_ids=None, prefix_lm_mask=None):
        """Logits [B,T,V] (fp32 for fp32 weights, unrestricted). Positions default to 0..T−1 (pass
        `padded_position_ids(mask)` for left-padded rows)."""
        batch, length = input_ids.shape
        if position_ids is None:  # the reference's forward: 0..T-1 whatever the mask
            position_ids = torch.arange(length).unsqueeze(0).expand(batch, length)
        allowed, adder = attention_inputs(attention_mask, prefix_lm_mask, batch, length)
        tr = self.transformer
        h = tr.drop(tr.wte(input_ids) + tr.wpe(position_ids))
        for block in tr.h:
            h = block(h, allowed, adder)
        h = tr.ln_f(h)
        h = self.top_query_layer(h, allowed, adder, query=self.top_query_embedding(position_ids))
        return torch.matmul(h, tr.wte.weight.t())

    def loss(self, input_ids, labels, attention_mask=None, position_ids=None, docstr_mask=None, prefix_lm_mask=None):
        """Mean CE over targets (labels unshifted, −100 ignored); with a map, each target's softmax runs over its
        modality's vocabulary (text where docstr_mask is 1 at the target, code elsewhere)."""
        logits = self.forward(input_ids, attention_mask, position_ids, prefix_lm_mask)[:, :-1].float()
        targets = labels[:, 1:].long()
        if self.separation_map:
            doc = (docstr_mask[:, 1:].bool() if docstr_mask is not None
                   else torch.zeros_like(targets, dtype=torch.bool))
            allowed = torch.where(doc[..., None], self.doc_tokens_mask.bool(), self.code_tokens_mask.bool())
            logits = logits.masked_fill(~allowed, float("-inf"))
        counted = targets != IGNORE_INDEX
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).clamp(min=0),
                                    reduction="none").view(targets.shape)
        return (per_token * counted).sum() / counted.sum()

    @torch.no_grad()
    def greedy_generate(self, input_ids, attention_mask=None, max_new_tokens=16, eos_token_id=None,
                        pad_token_id=None):
        """Greedy decoding by full recomputation (a reference, not fast). Left-padded batches; rows that produced
        eos get pad afterwards; stops early when every row is done; code-side vocabulary only with a map.
        Returns prompt + generated ids [B, T+n]."""
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        pad = self.config.pad_token_id if pad_token_id is None else pad_token_id
        ids = torch.as_tensor(np.asarray(input_ids), dtype=torch.long)
        mask = (torch.ones_like(ids) if attention_mask is None
                else torch.as_tensor(np.asarray(attention_mask), dtype=torch.long))
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        for _ in range(max_new_tokens):
            logits = self.forward(ids, mask, padded_position_ids(mask))[:, -1].float()
            if self.separation_map:
                logits = logits.masked_fill(~self.code_tokens_mask.bool(), float("-inf"))
            nxt = torch.where(done, torch.full_like(done, pad, dtype=torch.long), logits.argmax(-1))
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(nxt[:, None])], dim=1)
            done |= nxt == eos
            if bool(done.all()):
                break
        return ids


def state_dict_from_numpy(weights):
    """{name: np.ndarray} → {name: torch.Tensor} for `load_state_dict`."""
    return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in weights.items()}
