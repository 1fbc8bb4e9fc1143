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
