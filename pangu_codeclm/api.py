"""Public API: `from_pretrained(path)` → `PanguCodeCLM` (config, tokenizer, network, logits/loss/generate/save).

`path` is a checkpoint of any format of `pangu_codeclm.checkpoints` (the released HF layout, this project's MindSpore
layout, a model-zoo PanGu-Alpha .ckpt); the network class comes from the config's `model_type`
(`pangu_codeclm.families`). Every file is read and checked before any network is built, so a bad checkpoint loads
nothing.
"""
import logging
import os

import numpy as np

from . import checkpoints
from .families import family_for
from .tokenization.base import VOCAB_FILE

logger = logging.getLogger(__name__)


def _set_context(device_target):
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        ms.set_device(device_target)
    except RuntimeError as exc:  # the device was already set by this process
        current = ms.get_context("device_target")
        if current != device_target:
            raise RuntimeError(f"cannot use device {device_target!r}: this process already runs on {current!r} "
                               f"({exc})") from None


def _parameters_left_uninitialised():
    """MindSpore's no_init_parameters: parameters made with `initializer` stay unallocated until they are set (no
    random init of weights that the checkpoint replaces); a no-op where this MindSpore lacks it."""
    import contextlib
    try:
        from mindspore.nn.utils import no_init_parameters
    except ImportError:
        return contextlib.nullcontext()
    return no_init_parameters()


class PanguCodeCLM:
    """A loaded model: `.config`, `.tokenizer`, `.network`, `.separation_map`, and numpy-in/numpy-out helpers."""

    def __init__(self, config, network, separation_map, tokenizer=None, source=None):
        self.config = config
        self.network = network
        self.separation_map = dict(separation_map)
        self._tokenizer = tokenizer
        self.source = source

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            raise AttributeError(f"this model has no tokenizer: {self.source or 'its checkpoint'} has no "
                                 f"{VOCAB_FILE}; save one there with the tokenizer's save_pretrained")
        return self._tokenizer

    # ---------------------------------------------------------------------------------------------- compute
    @staticmethod
    def _tensor(value, dtype):
        import mindspore as ms
        return None if value is None else ms.Tensor(np.asarray(value), dtype)

    def _inputs(self, input_ids, attention_mask, position_ids, prefix_lm_mask):
        import mindspore as ms
        ids = np.asarray(input_ids)
        if ids.ndim != 2:
            raise ValueError(f"input_ids: expected shape [batch, length], got {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab_size):
            raise ValueError(f"input_ids: ids must lie in [0, {self.config.vocab_size}), got "
                             f"[{ids.min()}, {ids.max()}]")
        if ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(f"input_ids: length {ids.shape[1]} exceeds max_position_embeddings "
                             f"{self.config.max_position_embeddings}")
        b, t = ids.shape
        for name, value, shapes in (("attention_mask", attention_mask, ((b, t), (b, t, t))),
                                    ("position_ids", position_ids, ((b, t),)),
                                    ("prefix_lm_mask", prefix_lm_mask, ((b, t, t), (b,)))):
            if value is not None and np.shape(value) not in shapes:
                raise ValueError(f"{name}: expected shape {' or '.join(map(str, shapes))} for input_ids {ids.shape}, "
                                 f"got {np.shape(value)}")
        if prefix_lm_mask is not None and np.ndim(prefix_lm_mask) == 1:  # the reference's index form
            from .infer.generate import prefix_lm_matrix
            prefix_lm_mask = prefix_lm_matrix(prefix_lm_mask, t)
        return dict(input_ids=self._tensor(ids, ms.int32), attention_mask=self._tensor(attention_mask, ms.float32),
                    position_ids=self._tensor(position_ids, ms.int32),
                    prefix_lm_mask=self._tensor(prefix_lm_mask, ms.float32))

    def logits(self, input_ids, attention_mask=None, position_ids=None, prefix_lm_mask=None, restrict_to_code=False):
        """Logits [B,T,V] float32 numpy; masks 2-D [B,T] padding or 3-D [B,T,T] may-attend, `prefix_lm_mask` [B,T,T]
        (or the reference's index form [B]: keys <= index visible to every query) ORed into it. Positions default to
        0..T−1 as in the reference's forward; left-padded rows need cumsum(mask)−1 (padding 1), which `generate`
        computes itself. Unrestricted by default; `restrict_to_code=True` gives what the reference's forward returns
        without labels: -inf outside the code-side vocabulary of a separated model (nothing changes without a map)."""
        self.network.set_train(False)
        inputs = self._inputs(input_ids, attention_mask, position_ids, prefix_lm_mask)
        out = self.network(inputs["input_ids"], None, inputs["position_ids"], inputs["attention_mask"], None,
                           inputs["prefix_lm_mask"])
        logits = out.asnumpy().astype(np.float32)
        if restrict_to_code and self.separation_map:
            logits[..., self.network.code_vocabulary() == 0] = -np.inf
        return logits

    def loss(self, input_ids, labels, attention_mask=None, position_ids=None, docstr_mask=None, prefix_lm_mask=None):
        """Mean modality-restricted CE over targets (labels unshifted, −100 ignored) as a Python float."""
        import mindspore as ms
        self.network.set_train(False)
        inputs = self._inputs(input_ids, attention_mask, position_ids, prefix_lm_mask)
        shape = np.shape(input_ids)
        for name, value in (("labels", labels), ("docstr_mask", docstr_mask)):
            if value is not None and np.shape(value) != shape:
                raise ValueError(f"{name}: expected shape {shape} like input_ids, got {np.shape(value)}")
        out = self.network(inputs["input_ids"], self._tensor(labels, ms.int32), inputs["position_ids"],
                           inputs["attention_mask"], self._tensor(docstr_mask, ms.int32), inputs["prefix_lm_mask"])
        return float(out.asnumpy())

    def generate(self, input_ids, attention_mask=None, max_new_tokens=64, do_sample=False, temperature=1.0,
                 top_p=1.0, top_k=0, eos_token_id=None, pad_token_id=None, seed=None, prefix_index=None):
        """Prompt + generated ids [B, T+n] (KV cache; left-padded batches; eos-stopped rows padded); `prefix_index`
        [B]: Prefix Code CLM's bidirectional prompt prefix (keys <= index, in input_ids' coordinates; -1: none)."""
        from .infer.generate import generate
        self.network.set_train(False)
        ids = np.asarray(input_ids)
        if ids.ndim != 2:
            raise ValueError(f"input_ids: expected shape [batch, length], got {ids.shape}")
        return np.asarray(generate(
            self.network, ids, attention_mask, max_new_tokens=max_new_tokens, do_sample=do_sample,
            temperature=temperature, top_p=top_p, top_k=top_k,
            eos_token_id=self.config.eos_token_id if eos_token_id is None else eos_token_id,
            pad_token_id=self.config.pad_token_id if pad_token_id is None else pad_token_id, seed=seed,
            prefix_index=prefix_index))

    def generate_many(self, prompts, max_new_tokens=64, batch_size=16, do_sample=False, temperature=1.0, top_p=1.0,
                      top_k=0, eos_token_id=None, seed=None, prefix_index=None, on_finish=None):
        """Continuous batching: the generated ids (lists, up to and including eos) of every prompt (id lists, no
        padding), `batch_size` rows decoding at a time, a finished row's slot taken by the next prompt;
        `max_new_tokens` one budget or one per prompt; `prefix_index` one per prompt in its own coordinates. Greedy ids
        equal `generate` one prompt at a time (pangu_codeclm.infer.generate.generate_many); `on_finish(i, ids)` is called
        as soon as prompt i is done."""
        from .infer.generate import generate_many
        return generate_many(
            self.network, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, do_sample=do_sample,
            temperature=temperature, top_p=top_p, top_k=top_k,
            eos_token_id=self.config.eos_token_id if eos_token_id is None else eos_token_id, seed=seed,
            prefix_index=prefix_index, on_finish=on_finish)

    # ---------------------------------------------------------------------------------------------- saving
    def weights(self):
        """{HF key: float32 numpy array} of the network's checkpoint parameters (the vocabulary masks left out)."""
        import mindspore as ms
        return {name: p.astype(ms.float32).asnumpy()
                for name, p in checkpoints.checkpoint_parameters(self.network).items()}

    def save_pretrained(self, directory, layout="hf", overwrite=False, **options):
        """Write the model to `directory` in a writable checkpoint format: "hf" (default; `write_bin=True` adds
        pytorch_model.bin), "mindspore" (this project's layout) or "modelzoo" (a .ckpt path)."""
        writable = checkpoints.writable_formats()
        if layout not in writable:
            raise ValueError(f"layout: expected {' or '.join(repr(name) for name in writable)}, got {layout!r}")
        config = self.config.replace(param_init_type="float32")
        checkpoints.write_checkpoint(directory, layout, config, self.weights(), self.separation_map, self._tokenizer,
                                     overwrite=overwrite, **options)
        return directory


def from_pretrained(path, device_target="CPU", **config_overrides):
    """Load a checkpoint of any readable format; keyword arguments override config fields (e.g. compute_dtype; for a
    model-zoo .ckpt they are given to its reader, e.g. num_heads for a size that is no known preset)."""
    path = os.fspath(path)
    fmt = checkpoints.FORMATS[checkpoints.detect_format(path)]
    if fmt.config_from_options:  # every check happens here, before anything is built
        ckpt = checkpoints.read_checkpoint(path, format=fmt.name, **config_overrides)
        config = ckpt.config
    else:
        ckpt = checkpoints.read_checkpoint(path, format=fmt.name)
        config = ckpt.config.replace(**config_overrides) if config_overrides else ckpt.config
    tokenizer = ckpt.load_tokenizer()
    if tokenizer is not None:
        # Special ids come from the tokenizer (a GPT-2 style config.json may carry GPT-2's own eos id).
        ids = {"eos_token_id": tokenizer.eot_id, "pad_token_id": tokenizer.pad_id}
        if any(getattr(config, key) != value for key, value in ids.items()):
            logger.warning("%s: using the tokenizer's eos/pad ids %s instead of the config's %s", path, ids,
                           {key: getattr(config, key) for key in ids})
            config = config.replace(**ids)
    _set_context(device_target)
    with _parameters_left_uninitialised():  # each is set from the checkpoint next, tensor by tensor
        network = family_for(config).build_network(config, ckpt.separation_map)
    checkpoints.load_weights_into(network, ckpt.weights, path)  # the vocabulary masks were set from the map above
    for param in network.get_parameters():
        if param.has_init:  # anything the checkpoint did not set gets its own initializer's values
            param.init_data()
    network.set_train(False)
    logger.info("loaded %s checkpoint from %s on %s (separation %s)", ckpt.layout, path, device_target,
                config.separation)
    return PanguCodeCLM(config, network, ckpt.separation_map, tokenizer, path)
