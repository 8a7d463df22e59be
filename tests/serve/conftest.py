"""Fixtures for the serving tests; the helpers live in serve_toys.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from serve_toys import CODE2_EXTRA, LiveServer, make_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("serve") / "tiny")


@pytest.fixture(scope="session")
def code2_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("serve") / "code2", seed=1, block_size=96, extra=CODE2_EXTRA)


@pytest.fixture(scope="session")
def lm(checkpoint):
    import tinylm

    return tinylm.load(checkpoint)



@pytest.fixture(scope="session")
def long_checkpoint(tmp_path_factory) -> Path:
    """A context of 1024 tokens: a generation long enough to be cut off mid-stream."""
    return make_checkpoint(tmp_path_factory.mktemp("serve") / "long", seed=2, block_size=1024)


def _live(lm_path: Path, **options):
    import tinylm
    from tinylm.serve import create_app

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # inherited by the scheduler thread
    live = LiveServer(create_app(tinylm.load(lm_path), **options))
    try:
        yield live
    finally:
        live.stop()
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def server(checkpoint):
    yield from _live(checkpoint, model_name="tiny", max_body_bytes=64 * 1024)


@pytest.fixture(scope="session")
def code2_server(code2_checkpoint):
    yield from _live(code2_checkpoint, model_name="code2")


@pytest.fixture(scope="session")
def long_server(long_checkpoint):
    yield from _live(long_checkpoint, model_name="long")


@pytest.fixture(scope="session")
def trained_code2_server(tiny_code2_model):
    """The tiny trained CODE-2 line model (tests/conftest.py), served."""
    yield from _live(tiny_code2_model, model_name="code2-tiny")
