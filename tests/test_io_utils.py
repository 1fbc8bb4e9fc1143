"""Atomic writes and the restricted separation-map unpickler."""
import os
from pathlib import Path
import pickle

import numpy as np
import pytest

from pangu_codeclm.io_utils import atomic_write_text, load_int_map_pickle, save_int_map_pickle
from pangu_codeclm.separation import modality_vocab_masks


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_int_map_round_trip(tmp_path):
    path = tmp_path / "replicated_tokens_map.pkl"
    save_int_map_pickle(path, {5: 40, 7: 41})
    assert load_int_map_pickle(path) == {5: 40, 7: 41}


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({1: _Evil()}))
    with pytest.raises(ValueError, match="evil.pkl: unsafe or malformed pickle: refusing to load global"):
        load_int_map_pickle(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("obj, msg", [([1, 2], "found list"), ({1: "a"}, "found entry 1: 'a'")])
def test_wrong_shape_of_map_is_refused(tmp_path, obj, msg):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(ValueError, match=msg):
        load_int_map_pickle(path)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")

    def boom(*_):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_modality_masks():
    code, text = modality_vocab_masks({2: 5, 3: 6}, 8)
    np.testing.assert_array_equal(code, [1, 1, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(text, [1, 1, 1, 1, 1, 0, 0, 1])
    code, text = modality_vocab_masks({}, 4)
    assert code.sum() == text.sum() == 4
    with pytest.raises(ValueError, match="outside the vocabulary"):
        modality_vocab_masks({1: 9}, 8)


def test_atomic_write_gives_usual_permissions(tmp_path):
    path = tmp_path / "perm.txt"
    atomic_write_text(path, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    from pangu_codeclm.io_utils import atomic_directory
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (Path(tmp) / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(FileExistsError, match="out already exists; pass overwrite=True"):
        with atomic_directory(target):
            pass
    with pytest.raises(RuntimeError):
        with atomic_directory(target, overwrite=True) as tmp:
            (Path(tmp) / "b.txt").write_text("2")
            raise RuntimeError("failed half way")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]  # old content intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]    # no temp dirs left
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_directory(empty, allow_empty=True) as tmp:
        (Path(tmp) / "c.txt").write_text("3")
    assert (empty / "c.txt").read_text() == "3"
