"""Tokenizers behind one interface.

`base` (the `Tokenizer` interface, the special tokens, the directory's file names), `registry` (the kinds and
`load_tokenizer(dir)`, which picks the implementation from tokenizer_config.json), `sentencepiece_base` (what the
SentencePiece kinds share: specials after the pieces, separation twins, special-token splitting, save/load), the kinds
`pangu` (the released pangu-CodeCLM tokenizer) and `jieba` (PanGu-Alpha's). Training one from records is a data step:
`pangu_codeclm.data.tokenizer_training` (`pangu-codeclm tokenizer train`).
"""
