"""Project-wide test settings, and the one tiny trained CODE-2 model the test folders share.

Tests use tiny models: they gain nothing from intra-op threads, and on a busy 2-core
machine extra threads make them crawl (measured: 40-100x slower per step). One thread
for every test, restored afterwards so a test that measures threads can still set its own.
"""

from pathlib import Path

import pytest
import torch

from tiny_code2 import tiny_code2_recipe


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_code2_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model of tiny_code2_recipe, trained once per test session (shared by every folder)."""
    from tinylm.tasks.code2.train import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train(tiny_code2_recipe(), tmp_path_factory.mktemp("code2") / "run", quiet=True)
    finally:
        torch.set_num_threads(before)
    return Path(summary.model_dir)
