"""`pangu-codeclm tokenizer train`: a SentencePiece model with the PanGu recipe, for corpora without a released vocab.

Recipe (the released vocab.model's trainer spec): UNIGRAM, user symbols `<NEW_LINE> <INDENT> <DEDENT>` (ids 3/4/5 after
`<unk> <s> </s>`), nmt_nfkc normalisation, character coverage 0.9995, pieces of at most 16 characters, at most
5,000,000 shuffled sentences. Sentences are the docstrings and the (marker) code of a records file. The result is
wrapped in `PanguTokenizer` (specials after the pieces, chosen separation) and saved with `save_pretrained`.
"""
import logging
import os
import time

from pangu_codeclm.tokenization.pangu import MARKERS, SEPARATIONS

logger = logging.getLogger(__name__)

RECIPE = dict(model_type="unigram", user_defined_symbols=list(MARKERS),
              normalization_rule_name="nmt_nfkc", character_coverage=0.9995, max_sentencepiece_length=16,
              input_sentence_size=5_000_000, shuffle_input_sentence=True, max_sentence_length=1 << 16)


def record_sentences(records_path, skip_bad=False, stats=None):
    """Yield the non-empty docstring and code of each record, streaming (tqdm bar over records)."""
    from tqdm import tqdm

    from pangu_codeclm.data.records import iter_records

    for record in tqdm(iter_records(records_path, skip_bad=skip_bad, stats=stats), unit="rec", desc="sentences"):
        for text in (record["docstring"], record["code"]):
            if text.strip():
                yield text


def train_sentencepiece(sentences, vocab_size, num_threads=None):
    """Train a SentencePiece model with RECIPE on an iterable of strings; return (serialized model bytes, number of
    sentences)."""
    import io

    import sentencepiece as spm

    from pangu_codeclm.tokenization.pangu import TokenizerError

    if vocab_size < 8:
        raise TokenizerError(f"--vocab-size {vocab_size}: expected at least 8 (3 control pieces + 3 markers + text)")
    count = [0]

    def counted():
        for text in sentences:
            count[0] += 1
            yield text

    buf = io.BytesIO()
    kwargs = dict(RECIPE, vocab_size=vocab_size, num_threads=num_threads or min(16, os.cpu_count() or 1),
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


def train_tokenizer(records_path, vocab_size, out_dir, separation="none", separate_tokens_file=None, skip_bad=False):
    """Train on a records file, build the PanguTokenizer with `separation`, save it to `out_dir`; return it."""
    import tempfile

    from pangu_codeclm.io_utils import atomic_write_bytes
    from pangu_codeclm.tokenization.pangu import VOCAB_FILE, PanguTokenizer

    stats = {}
    model, n_sentences = train_sentencepiece(record_sentences(records_path, skip_bad, stats), vocab_size)
    with tempfile.TemporaryDirectory(prefix="spm-") as tmp:
        path = os.path.join(tmp, VOCAB_FILE)
        atomic_write_bytes(path, model)
        tokenizer = PanguTokenizer.from_vocab(path, separation, separate_tokens_file)
    tokenizer.save_pretrained(out_dir)
    tokenizer.source = os.fspath(out_dir)
    logger.info("records %s: %d read, %d skipped as malformed; %d sentences", records_path, stats.get("read", 0),
                stats.get("bad", 0), n_sentences)
    return tokenizer


def add_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a SentencePiece tokenizer (PanGu recipe) on a records file")
    train.add_argument("--records", required=True, help="records file (.jsonl, .jsonl.gz or .parquet)")
    train.add_argument("--vocab-size", type=int, required=True, help="SentencePiece pieces (specials come after)")
    train.add_argument("--out", required=True, help="output directory (save_pretrained layout)")
    train.add_argument("--separation", choices=SEPARATIONS, default="none")
    train.add_argument("--separate-tokens-file", default=None,
                       help="partial separation token list, one per line (default: derived from Python)")
    train.add_argument("--skip-bad", action="store_true", help="skip malformed records instead of stopping")


def run(args):
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    try:
        tok = train_tokenizer(args.records, args.vocab_size, args.out, args.separation, args.separate_tokens_file,
                              args.skip_bad)
    except (ValueError, FileNotFoundError) as exc:  # RecordError and TokenizerError are ValueErrors
        print(f"pangu-codeclm tokenizer train: error: {exc}", file=sys.stderr)
        return 2
    print(f"tokenizer saved to {args.out}: {args.vocab_size} pieces, separation {tok.separation}, vocab size "
          f"{tok.vocab_size}, {len(tok.separation_map)} mapped tokens ({time.perf_counter() - start:.1f} s)")
    return 0
