"""No network at test time: the download is replaced by a function returning bytes."""

import hashlib

import pytest

from tinylm.data import shakespeare
from tinylm.data.shakespeare import SHA256, tinyshakespeare_path
from tinylm.errors import TinyLMError


def test_constant_is_the_sha256_of_the_real_file(shakespeare_file):
    assert hashlib.sha256(shakespeare_file.read_bytes()).hexdigest() == SHA256
    assert tinyshakespeare_path(local=shakespeare_file) == shakespeare_file


def test_env_var(shakespeare_file, monkeypatch, tmp_path):
    monkeypatch.setenv("TINYLM_SHAKESPEARE", str(shakespeare_file))
    monkeypatch.setattr(shakespeare, "_fetch", lambda url: pytest.fail("must not download"))
    assert tinyshakespeare_path(cache_dir=tmp_path) == shakespeare_file


def test_wrong_local_file(tmp_path):
    fake = tmp_path / "input.txt"
    fake.write_text("First Citizen:\nnot quite\n")
    with pytest.raises(TinyLMError, match="is not Tiny Shakespeare"):
        tinyshakespeare_path(local=fake)
    with pytest.raises(TinyLMError, match="not found"):
        tinyshakespeare_path(local=tmp_path / "missing.txt")


def test_download_into_cache_then_reuse(shakespeare_file, monkeypatch, tmp_path):
    monkeypatch.delenv("TINYLM_SHAKESPEARE", raising=False)
    calls = []
    monkeypatch.setattr(shakespeare, "_fetch", lambda url: calls.append(url) or shakespeare_file.read_bytes())
    path = tinyshakespeare_path(cache_dir=tmp_path)
    assert path == tmp_path / "tinyshakespeare.txt" and path.read_bytes() == shakespeare_file.read_bytes()
    assert tinyshakespeare_path(cache_dir=tmp_path) == path
    assert calls == [shakespeare.URL]


def test_bad_download_is_not_cached(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYLM_SHAKESPEARE", raising=False)
    monkeypatch.setattr(shakespeare, "_fetch", lambda url: b"<html>rate limited</html>")
    with pytest.raises(TinyLMError, match="sha256"):
        tinyshakespeare_path(cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_network_failure_is_a_user_error(monkeypatch, tmp_path):
    import urllib.error

    def offline(url, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.delenv("TINYLM_SHAKESPEARE", raising=False)
    monkeypatch.setattr(shakespeare.urllib.request, "urlopen", offline)
    with pytest.raises(TinyLMError, match="could not download .*TINYLM_SHAKESPEARE"):
        tinyshakespeare_path(cache_dir=tmp_path)
