"""Training a tokenizer directory from a records file (`pangu-codeclm tokenizer train --kind KIND`).

The SentencePiece model is trained with the kind's `sentencepiece_recipe` (UNIGRAM, character coverage 0.9995, pieces
of at most 16 characters, at most 5,000,000 shuffled sentences, plus per kind: pangu, the released vocab.model's
spec, user symbols `<NEW_LINE> <INDENT> <DEDENT>` (ids 3/4/5 after `<unk> <s> </s>`) and nmt_nfkc; jieba, user
symbols `<eod> <eot> <pad>` and identity normalisation) on the kind's `training_sentences` of the docstrings and
(marker) code of the records (jieba: the jieba-joined chunks between special tokens, as its encoder segments them).
The model is wrapped in the kind's tokenizer (specials after the pieces, chosen separation) and saved with
`save_pretrained`, which writes the kind into tokenizer_config.json for `load_tokenizer`.
"""
import logging
import os

from pangu_codeclm.tokenization.base import TokenizerError
from pangu_codeclm.tokenization.registry import DEFAULT_KIND, tokenizer_cls

logger = logging.getLogger(__name__)


def record_sentences(records_path, skip_bad=False, stats=None):
    """Yield the non-empty docstring and code of each record, streaming (tqdm bar over records)."""
    from tqdm import tqdm

    from pangu_codeclm.data.records import iter_records

    for record in tqdm(iter_records(records_path, skip_bad=skip_bad, stats=stats), unit="rec", desc="sentences"):
        for text in (record["docstring"], record["code"]):
            if text.strip():
                yield text


def train_sentencepiece(sentences, vocab_size, num_threads=None, recipe=None):
    """Train a SentencePiece model with `recipe` (default: the pangu kind's) on an iterable of strings; return
    (serialized model bytes, number of sentences)."""
    import io

    import sentencepiece as spm

    recipe = recipe or tokenizer_cls(DEFAULT_KIND).sentencepiece_recipe
    minimum = 3 + len(recipe["user_defined_symbols"]) + 2
    if vocab_size < minimum:
        raise TokenizerError(f"--vocab-size {vocab_size}: expected at least {minimum} (3 control pieces + "
                             f"{len(recipe['user_defined_symbols'])} user symbols + text)")
    count = [0]

    def counted():
        for text in sentences:
            count[0] += 1
            yield text

    buf = io.BytesIO()
    kwargs = dict(recipe, vocab_size=vocab_size, num_threads=num_threads or min(16, os.cpu_count() or 1),
                  minloglevel=2)
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=counted(), model_writer=buf, **kwargs)
    except RuntimeError as exc:
        if count[0] == 0:
            raise TokenizerError("no sentences to train on: the records have empty docstrings and code") from None
        raise TokenizerError(f"SentencePiece training failed on {count[0]} sentences with vocab size {vocab_size}: "
                             f"{str(exc).strip()}") from None
    logger.info("trained a %d-piece SentencePiece model on %d sentences", vocab_size, count[0])
    return buf.getvalue(), count[0]


def train_tokenizer(records_path, vocab_size, out_dir, separation="none", separate_tokens_file=None, skip_bad=False,
                    kind=DEFAULT_KIND):
    """Train a `kind` tokenizer on a records file with `separation`, save it to `out_dir`; return it."""
    import tempfile

    from pangu_codeclm.io_utils import atomic_write_bytes
    from pangu_codeclm.tokenization.base import VOCAB_FILE

    cls = tokenizer_cls(kind)
    if cls.sentencepiece_recipe is None:
        raise TokenizerError(f"tokenizer kind {kind!r} has no SentencePiece training recipe")
    stats = {}
    sentences = (s for text in record_sentences(records_path, skip_bad, stats) for s in cls.training_sentences(text))
    model, n_sentences = train_sentencepiece(sentences, vocab_size, recipe=cls.sentencepiece_recipe)
    with tempfile.TemporaryDirectory(prefix="spm-") as tmp:
        path = os.path.join(tmp, VOCAB_FILE)
        atomic_write_bytes(path, model)
        tokenizer = cls.from_vocab(path, separation, separate_tokens_file)
    tokenizer.save_pretrained(out_dir)
    tokenizer.source = os.fspath(out_dir)
    logger.info("records %s: %d read, %d skipped as malformed; %d sentences", records_path, stats.get("read", 0),
                stats.get("bad", 0), n_sentences)
    return tokenizer
