"""Shared fixtures: a tiny random SD pipeline folder, built once per test session."""

from pathlib import Path

import pytest
from tiny_sd import build_tiny_sd


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD-1.x pipeline saved in diffusers layout, loaded like a user's folder."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests run tiny float64 ops, where 2 threads cost ~10x in overhead; xdist uses the cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
