"""The tokenizer interface every pipeline stage uses, the special tokens it relies on and the directory layout.

A tokenizer gives text-side ids (`encode`), code-side ids (`encode_code`: through the separation map), text back
(`decode`), the vocabulary (`token_to_id`, `id_to_token`, `vocab_size`), the separation (`separation`,
`separation_map`: text-side id -> code-side twin) and the special ids below; `save_pretrained(dir)` writes a directory
that `pangu_codeclm.tokenization.registry.load_tokenizer` reads back, choosing the implementation from what
tokenizer_config.json says.
"""
import abc

SPECIAL_TOKENS = ("<eod>", "<eot>", "<pad>", "<java>", "<python>", "<go>", "<php>", "<javascript>", "<ruby>", "<en>",
                  "<cn>", "<comments>", "<NEW_LINE>", "<INDENT>", "<DEDENT>", "<mask>")
MARKERS = ("<NEW_LINE>", "<INDENT>", "<DEDENT>")
# bos/eos/unk/pad/mask of the reference tokenizer: also "special", hence never separated
BASE_SPECIAL_TOKENS = ("<s>", "</s>", "<unk>", "<pad>", "<mask>")
DUP_PREFIX = "[_DUP_]"
SPIECE_UNDERLINE = "\u2581"

# a tokenizer directory (the released checkpoints' layout)
VOCAB_FILE = "vocab.model"
ADDED_TOKENS_FILE = "added_tokens.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"  # its "tokenizer_class" names the implementation
SEPARATION_MAP_FILE = "replicated_tokens_map.pkl"


class TokenizerError(ValueError):
    """A tokenizer file or argument is wrong; the message names the file or value and what was expected."""


class Tokenizer(abc.ABC):
    """What the pipeline needs of a tokenizer. Implementations set `kind` (the registry key) and `tokenizer_class`
    (the name their tokenizer_config.json carries)."""

    kind = None
    tokenizer_class = None

    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, directory, separation=None):
        """Read a directory `save_pretrained` wrote; `separation` is a hint where the directory does not say."""

    @abc.abstractmethod
    def save_pretrained(self, directory):
        """Write the tokenizer to `directory` (its tokenizer_config.json names `tokenizer_class`); return it."""

    @abc.abstractmethod
    def encode(self, text):
        """Text-side ids of `text` (no bos/eos added); special tokens written in the text are single ids."""

    @abc.abstractmethod
    def encode_code(self, code):
        """Code-side ids: `encode(code)` with each id sent through the separation map."""

    @abc.abstractmethod
    def decode(self, ids, skip_special_tokens=False):
        """Text of `ids` (text- or code-side alike); `skip_special_tokens` drops the specials except the markers."""

    @abc.abstractmethod
    def token_to_id(self, tok):
        """Id of a token; KeyError for a string that is not in the vocabulary."""

    @abc.abstractmethod
    def id_to_token(self, i):
        """Token string of an id; ValueError outside the vocabulary."""

    @property
    @abc.abstractmethod
    def vocab_size(self):
        """Embedding rows, separation twins included."""

    @property
    @abc.abstractmethod
    def separation(self):
        """The separation: "none", "partial" or "full"."""

    @property
    @abc.abstractmethod
    def separation_map(self):
        """A copy of the map text-side id -> code-side id (empty without separation)."""

    def generation_time(self):
        """This tokenizer as generation uses it (the same one unless an implementation's reference differs)."""
        return self

    def __len__(self):
        return self.vocab_size

    @property
    def special_tokens(self):
        return SPECIAL_TOKENS

    eod_id = property(lambda self: self.token_to_id("<eod>"))
    eot_id = property(lambda self: self.token_to_id("<eot>"))
    pad_id = property(lambda self: self.token_to_id("<pad>"))
    python_id = property(lambda self: self.token_to_id("<python>"))
    comments_id = property(lambda self: self.token_to_id("<comments>"))
    mask_id = property(lambda self: self.token_to_id("<mask>"))
    newline_id = property(lambda self: self.token_to_id("<NEW_LINE>"))
    indent_id = property(lambda self: self.token_to_id("<INDENT>"))
    dedent_id = property(lambda self: self.token_to_id("<DEDENT>"))
