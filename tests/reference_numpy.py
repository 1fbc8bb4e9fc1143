"""Plain numpy references shared by the tests (written independently of the code under test)."""
import numpy as np


def restricted_ce(logits, labels, docstr_mask, mapping):
    """Shifted CE: ignore −100, softmax over the target's modality vocabulary, mean over counted targets.

    Code side = every id that is not a map key; text side = every id that is not a map value (docstr_mask=1).
    """
    vocab = logits.shape[-1]
    code = np.ones(vocab, bool)
    text = np.ones(vocab, bool)
    if mapping:
        code[list(mapping)] = False
        text[list(mapping.values())] = False
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(1, labels.shape[1]):
            target = labels[b, t]
            if target == -100:
                continue
            allowed = text if (docstr_mask is not None and docstr_mask[b, t]) else code
            z = logits[b, t - 1].astype(np.float64)
            row = z[allowed]
            row_max = row.max()
            total += np.log(np.exp(row - row_max).sum()) + row_max - z[target]
            count += 1
    return total / max(count, 1)


# ---------------------------------------------------------------------------------------------- forward references
def activation(x, kind):
    """gelu (exact erf), fast_gelu (MindSpore FastGeLU: x / (1 + exp(-1.702|x|)) * exp(0.851 (x - |x|))), gelu_tanh."""
    x = x.astype(np.float64)
    if kind == "gelu":
        from math import erf, sqrt
        return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))
    if kind == "fast_gelu":
        return x / (1.0 + np.exp(-1.702 * np.abs(x))) * np.exp(0.851 * (x - np.abs(x)))
    if kind == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))
    raise ValueError(kind)


def _layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _attend(q, k, v, heads):
    """Causal multi-head attention of [T, E] queries over [T, E] keys/values."""
    t, e = q.shape
    d = e // heads
    split = lambda m: m.reshape(t, heads, d).transpose(1, 0, 2)  # noqa: E731
    scores = split(q) @ split(k).transpose(0, 2, 1) / np.sqrt(d)
    scores = np.where(np.tril(np.ones((t, t), bool)), scores, -1e4)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return (probs @ split(v)).transpose(1, 0, 2).reshape(t, e)


def _forward(ids, wte, wpe, tqe, blocks, top, final, heads, act):
    """The PanGu-Alpha forward: blocks, final LayerNorm, top query layer, tied head; each layer is a dict of callables
    (ln1, qkv(x, query) -> (q, k, v), proj, ln2, fc, out)."""
    out = []
    for row in np.asarray(ids):
        pos = np.arange(len(row))
        h = wte[row] + wpe[pos]
        for layer in blocks + [top]:
            if layer is top:
                h = final(h)
            q, k, v = layer["qkv"](layer["ln1"](h), tqe[pos])
            h = h + layer["proj"](_attend(q, k, v, heads))
            h = h + layer["out"](activation(layer["fc"](layer["ln2"](h)), act))
        out.append(h @ wte.T)
    return np.stack(out)


def hf_logits(weights, config, ids):
    """Logits of our HF-key weights (Conv1D weights (in, out); c_attn = [Q|K|V], the top layer's q_attn + [K|V])."""
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    lin = lambda p: (lambda x: x @ w[p + ".weight"] + w[p + ".bias"])  # noqa: E731
    norm = lambda p: (lambda x: _layer_norm(x, w[p + ".weight"], w[p + ".bias"], config.layernorm_epsilon))  # noqa

    def layer(p, top):
        def qkv(x, query):
            parts = np.split(lin(p + ".attn.c_attn")(x), 2 if top else 3, axis=-1)
            return (lin(p + ".attn.q_attn")(query), *parts) if top else tuple(parts)
        return dict(ln1=norm(p + ".ln_1"), ln2=norm(p + ".ln_2"), qkv=qkv, proj=lin(p + ".attn.c_proj"),
                    fc=lin(p + ".mlp.c_fc"), out=lin(p + ".mlp.c_proj"))
    blocks = [layer(f"transformer.h.{i}", False) for i in range(config.num_layers)]
    return _forward(ids, w["transformer.wte.weight"], w["transformer.wpe.weight"], w["top_query_embedding.weight"],
                    blocks, layer("top_query_layer", True), norm("transformer.ln_f"), config.num_heads,
                    config.activation)


def modelzoo_logits(params, word, position, num_heads, act, ids, eps=1e-5):
    """Logits of model-zoo PanGu-Alpha tensors, read as the model zoo's network computes them: attention.dense1/2/3
    are Linear(transpose_b=True), y = x W^T + b; projection and output.mapping/projection are y = x W + b; Q of the
    top query layer from dense1(top_query_embedding), K, V from dense2/3 of the normed hidden states."""
    w = {k: np.asarray(v, np.float64) for k, v in params.items()}
    dense = lambda p: (lambda x: x @ w[p + ".weight"].T + w[p + ".bias"])  # noqa: E731
    mapping = lambda p: (lambda x: x @ w[p + ".weight"] + w[p + ".bias"])  # noqa: E731
    norm = lambda p: (lambda x: _layer_norm(x, w[p + ".gamma"], w[p + ".beta"], eps))  # noqa: E731

    def layer(p, top):
        def qkv(x, query):
            a = p + ".attention.dense"
            return dense(a + "1")(query if top else x), dense(a + "2")(x), dense(a + "3")(x)
        return dict(ln1=norm(p + ".layernorm1"), ln2=norm(p + ".layernorm2"), qkv=qkv,
                    proj=mapping(p + ".attention.projection"), fc=mapping(p + ".output.mapping"),
                    out=mapping(p + ".output.projection"))
    count = len({k.split(".")[2] for k in w if k.startswith("backbone.blocks.")})
    blocks = [layer(f"backbone.blocks.{i}", False) for i in range(count)]
    return _forward(ids, w[word], w[position], w["backbone.top_query_embedding.embedding_table"], blocks,
                    layer("backbone.top_query_layer", True), norm("backbone.layernorm"), num_heads, act)
