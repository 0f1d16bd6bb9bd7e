"""Shared fixtures: a tiny random SD pipeline folder, built once per test session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any hub import: tests never go online

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from tiny_sd import build_tiny_sd  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD-1.x pipeline saved in diffusers layout, loaded like a user's folder."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session")
def tiny_prior(tiny_sd: Path):
    """The tiny pipeline loaded the way a user's folder is (prompt "a photo")."""
    from bench.priors import load_prior

    return load_prior(str(tiny_sd), prompt="a photo")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests run tiny float64 ops, where 2 threads cost ~10x in overhead; xdist uses the cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_terminal_summary(terminalreporter) -> None:
    """The fault-injection suite's one-line summary, when it ran."""
    from faults import TALLY, summary_line

    if TALLY:
        terminalreporter.write_line(summary_line())
