"""Project-wide test settings.

Tests use tiny models: they gain nothing from intra-op threads, and on a busy 2-core
machine extra threads make them crawl (measured: 40-100x slower per step). One thread
for every test, restored afterwards so a test that measures threads can still set its own.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
