"""The sample layout shared by training rows (`data.objectives`), prompts (`evaluation.prompts`) and generation
(`infer`): `[<comments>] + enc(text) + [<python>] + code-side(enc(code)) [+ <eot>]` (../shared/DESIGN.md).

Training samples end with `<eot>`; prompts stop after the code prefix the model continues, and a generation ends at
the first `<eot>` or `<pad>`. The special ids come from the tokenizer's properties (`comments_id`, `python_id`,
`eot_id`, `pad_id`), never from literals.
"""
IGNORE_INDEX = -100  # a label that is not a target (HF convention; the loss skips it)


def assemble(text_ids, code_ids, comments_id, python_id, eot_id=None):
    """(ids, python_index): `[comments_id] + text_ids + [python_id] + code_ids`, plus `[eot_id]` when it is given;
    `python_index` is the position of `<python>` (= len(<comments> + text ids), the end of the text block)."""
    ids = [int(comments_id), *map(int, text_ids), int(python_id), *map(int, code_ids)]
    if eot_id is not None:
        ids.append(int(eot_id))
    return ids, len(text_ids) + 1


def encode(tokenizer, text, code_parts, eot=False):
    """`assemble` of a text (text side) and code parts, each encoded apart to code-side ids (empty parts skipped),
    with the tokenizer's special ids; `eot=True` ends it with `<eot>` as a training sample."""
    code_ids = [i for part in code_parts if part for i in tokenizer.encode_code(part)]
    return assemble(tokenizer.encode(text), code_ids, tokenizer.comments_id, tokenizer.python_id,
                    tokenizer.eot_id if eot else None)


def until_stop(tokenizer, generated):
    """Generated ids up to (not including) the first `<eot>` / `<pad>`."""
    stop = (tokenizer.eot_id, tokenizer.pad_id)
    ids = []
    for token in generated:
        if int(token) in stop:
            break
        ids.append(int(token))
    return ids
