"""Small IO helpers shared by the whole package: atomic writes and a safe reader for separation maps."""
import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it is renamed over `path`, on error removed.

    Nothing half-written is ever visible under the final name.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the final file the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path, overwrite=False, allow_empty=False):
    """Yield a temp dir beside `path`; on success it replaces `path`, on error it is removed.

    An existing `path` is refused unless `overwrite` (or, with `allow_empty`, unless it is an empty directory); it is
    moved aside during the swap and put back if the swap fails, so `path` is always either old or new, never partial.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite and not (allow_empty and os.path.isdir(path) and not os.listdir(path)):
        what = "exists and is not empty" if allow_empty else "already exists"
        raise FileExistsError(f"{path} {what}; pass overwrite=True (--overwrite) to replace it")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    try:
        yield tmp
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".old", dir=parent)
            os.replace(path, os.path.join(old, "d"))
        try:
            os.replace(tmp, path)
        except BaseException:
            if old:
                os.replace(os.path.join(old, "d"), path)
            raise
        finally:
            if old:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path, data: bytes):
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text: str):
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj, indent=2):
    """Write `obj` as JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def file_sha256(path, chunk=1 << 20):
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def load_json(path, error=ValueError, what="JSON file"):
    """Parse a JSON file; a missing file or bad JSON raises `error` naming the file (and line)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason})") from None


class _IntDictUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: only builtin containers and scalars can be built."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(
            f"refusing to load global '{module}.{name}': a separation map must be a plain dict of ints")


def load_int_map_pickle(path):
    """Read a `replicated_tokens_map.pkl`: a pickled dict {int: int}; anything else is refused with a clear error."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = _IntDictUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: unsafe or malformed pickle: {exc}") from None
    except Exception as exc:  # truncated/corrupt stream
        raise ValueError(f"{path}: cannot read pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of int -> int, found {type(obj).__name__}")
    for key, value in obj.items():
        if type(key) is not int or type(value) is not int:
            raise ValueError(f"{path}: expected a dict of int -> int, found entry {key!r}: {value!r}")
    return obj


def save_int_map_pickle(path, mapping):
    """Write a dict {int: int} as a pickle (protocol 4) atomically."""
    clean = {int(k): int(v) for k, v in mapping.items()}
    atomic_write_bytes(path, pickle.dumps(clean, protocol=4))
