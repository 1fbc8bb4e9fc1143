"""PanGu SentencePiece tokenizer (kind "pangu"): the released pangu-CodeCLM tokenizer.

Ids equal the reference (HF `PanguAlphaTokenizer`, transformers 4.19, as used to build the released data): each chunk
of text between special tokens is encoded by SentencePiece on its own, and a run of pieces is decoded by SentencePiece;
everything else (specials after the pieces, splitting, separation, the directory) is
`sentencepiece_base.SentencePieceTokenizer`. For text in canonical form (NFKC, single spaces, one space around each
marker) without added tokens, `decode(encode(x)) == x`; whitespace next to an added token is dropped by the encoder
(as in the reference), so `s.rindex(x)`, `nonlocal x`, `x -= 1` come back as written, but `__aiter__` (with `aiter`
an added token) comes back as `__ aiter __`.
"""
from pangu_codeclm.tokenization.base import BASE_SPECIAL_TOKENS, MARKERS
from pangu_codeclm.tokenization.sentencepiece_base import (BASE_SPECIAL_MAP, RECIPE_DEFAULTS, SentencePieceTokenizer,
                                                           direct_encoder, split_patterns)


class PanguTokenizer(SentencePieceTokenizer):
    """PanGu tokenizer: SentencePiece segmentation; its tokenizer_config.json is the released one, byte for byte."""

    kind = "pangu"
    tokenizer_class = "PanguAlphaTokenizer"
    # the released vocab.model's: the markers at 3/4/5 after <unk> <s> </s>, nmt_nfkc
    sentencepiece_recipe = dict(RECIPE_DEFAULTS, user_defined_symbols=list(MARKERS), normalization_rule_name="nmt_nfkc")

    def _make_segmenter(self):
        return direct_encoder(self._sp)

    def _decode_pieces(self, ids):
        return self._sp.decode(ids)

    def _config_json(self):
        return {"do_lower_case": False, "remove_space": False, "keep_accents": False, **BASE_SPECIAL_MAP,
                "additional_special_tokens": [], "sp_model_kwargs": {}, "tokenizer_class": self.tokenizer_class}

    def generation_time(self):
        """This tokenizer as the reference loads it for generation (`from_pretrained`): `<s>`, `</s>` and `<unk>`
        written in a text are single tokens too (quirk T1). Training data use the tokenizer itself. Built once."""
        view = self.__dict__.get("_generation_view")
        if view is None:
            view = object.__new__(type(self))
            view.__dict__.update(self.__dict__)
            view._no_split = self._no_split | {t for t in BASE_SPECIAL_TOKENS[:3] if self._lookup(t) is not None}
            view._split_re, view._split_plain_re = split_patterns(view._no_split)
            view._no_split_ids = {tok: view.token_to_id(tok) for tok in view._no_split}
            view._generation_view = self._generation_view = view
        return view
