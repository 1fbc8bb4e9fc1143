"""`Checkpoint`: what every format's reader returns (config, checked weights, separation map, tokenizer dir)."""
from .errors import CheckpointError


class Checkpoint:
    """A checked checkpoint: config, numpy weights under the family's (HF) keys, separation map, tokenizer dir (or
    None), the format it was read from and its path."""

    def __init__(self, config, weights, separation_map, tokenizer_dir, layout, path):
        self.config, self.weights, self.separation_map = config, weights, separation_map
        self.tokenizer_dir, self.layout, self.path = tokenizer_dir, layout, path

    def load_tokenizer(self):
        """The tokenizer saved with the checkpoint (None when there is none; its kind is read from its files),
        checked against the vocabulary."""
        if self.tokenizer_dir is None:
            return None
        from ..tokenization.registry import load_tokenizer
        tokenizer = load_tokenizer(self.tokenizer_dir, separation=self.config.separation)
        check_tokenizer_vocab(tokenizer, self.config, self.tokenizer_dir)
        return tokenizer


def check_tokenizer_vocab(tokenizer, config, source):
    """CheckpointError naming `source` unless the tokenizer has exactly the model's `vocab_size` ids."""
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(f"{source}: the tokenizer has {tokenizer.vocab_size} ids but the model has "
                              f"{config.vocab_size} embedding rows")
