"""Small file helpers shared by checkpoints, tokenizers, datasets and reports.

Every file tinylm writes goes through `atomic_write`: write to a temporary file in the
same folder, flush, fsync, then `os.replace`. A crash at any moment leaves either the
old file or the new one, never a half-written mix.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, IO


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; when the block succeeds it replaces `path`.

    The old folder is moved aside, the new one moved in, then the old one deleted: a crash
    at any point leaves the old folder (recoverable from `.NAME.old`, see
    `recover_interrupted_swap`) or the new one, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        # mkdtemp/mkstemp make owner-only entries; a model folder is meant to be readable by
        # others (a server running as another user), so give it the usual permissions.
        os.chmod(tmp, 0o777 & ~current_umask())
        for f in tmp.rglob("*"):
            os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~current_umask())
        old = path.parent / f".{path.name}.old"
        if path.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_interrupted_swap(path: str | os.PathLike) -> None:
    """If a crash hit between the two renames of `atomic_folder`, put the old folder back."""
    path = Path(path)
    old = path.parent / f".{path.name}.old"
    if not path.exists() and old.exists():
        os.replace(old, path)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    from tinylm.errors import TinyLMError

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise TinyLMError(f"file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TinyLMError(f"{path} is not valid JSON: {e}") from None


def read_settings_file(path: str | os.PathLike, what: str) -> Any:
    """A user's TOML (by its suffix) or JSON settings file (a recipe, a search space), read
    with one-line TinyLMErrors that call it a `what` file."""
    from tinylm.errors import TinyLMError

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TinyLMError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise TinyLMError(f"expected a {what} file, got a folder: {path}") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(raw.decode("utf-8"))
        return json.loads(raw)
    except UnicodeDecodeError as e:
        raise TinyLMError(f"{what} file {path} is not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise TinyLMError(f"{what} file {path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except ValueError as e:  # tomllib.TOMLDecodeError
        raise TinyLMError(f"{what} file {path} is not valid TOML ({e})") from None
