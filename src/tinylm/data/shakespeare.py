"""Tiny Shakespeare (1.1 MB, Karpathy's char-rnn corpus): the default corpus to learn on.

Where the file comes from, first match wins:
  1. the `local` argument,
  2. the TINYLM_SHAKESPEARE environment variable (offline machines, shared copies),
  3. the cache, $XDG_CACHE_HOME/tinylm or ~/.cache/tinylm, downloading it there if needed.

Every copy is checked against the known sha256, so a truncated download or a different
file named tinyshakespeare.txt cannot silently change what a model is trained on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
import urllib.error
import urllib.request

from tinylm.errors import TinyLMError
from tinylm.atomic_files import atomic_write

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
FILENAME = "tinyshakespeare.txt"
ENV_VAR = "TINYLM_SHAKESPEARE"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinylm"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(url: str) -> bytes:
    """Download url (tests replace this function: they have no network)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as e:
        raise TinyLMError(f"could not download {url} ({e}); set {ENV_VAR} to a local copy") from None


def _verified(path: Path) -> Path:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TinyLMError(f"Tiny Shakespeare file not found: {path}") from None
    digest = _sha256(data)
    if digest != SHA256:
        raise TinyLMError(f"{path} is not Tiny Shakespeare (sha256 {digest}, expected {SHA256})")
    return path


def tinyshakespeare_path(local: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """Path to a verified copy of Tiny Shakespeare, downloading it into the cache if needed."""
    if local is not None:
        return _verified(Path(local))
    if os.environ.get(ENV_VAR):
        return _verified(Path(os.environ[ENV_VAR]))
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / FILENAME
    # A cached copy is only ever written after its checksum passed, so a mismatch means
    # someone replaced it: download again rather than fail.
    if path.is_file() and _sha256(path.read_bytes()) == SHA256:
        return path
    data = _fetch(URL)
    digest = _sha256(data)
    if digest != SHA256:
        raise TinyLMError(f"downloaded {URL} but its sha256 is {digest}, expected {SHA256}")
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path
