"""Tokenizers: the PanGu SentencePiece tokenizer with modality separation (`pangu`) and its training recipe
(`training`)."""
from .pangu import (ADDED_TOKENS_FILE, DUP_PREFIX, MARKERS, SEPARATION_MAP_FILE, SEPARATIONS, SPECIAL_TOKENS,
                    SPECIAL_TOKENS_MAP_FILE, SPIECE_UNDERLINE, TOKENIZER_CONFIG_FILE, VOCAB_FILE, PanguTokenizer,
                    TokenizerError, default_partial_tokens, read_token_file)

__all__ = ["ADDED_TOKENS_FILE", "DUP_PREFIX", "MARKERS", "SEPARATION_MAP_FILE", "SEPARATIONS", "SPECIAL_TOKENS",
           "SPECIAL_TOKENS_MAP_FILE", "SPIECE_UNDERLINE", "TOKENIZER_CONFIG_FILE", "VOCAB_FILE", "PanguTokenizer",
           "TokenizerError", "default_partial_tokens", "read_token_file"]
