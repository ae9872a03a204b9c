"""Hypothesis profiles: "dev" (fast, random) and "ci" (derandomised, no deadline, more
examples); "ci" is selected when the environment variable CI is set."""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    """The reliability tests' data files (tests/trainer_runs.py)."""
    from trainer_runs import write_data

    return write_data(tmp_path_factory.mktemp("trainer-data"))


@pytest.fixture(scope="session")
def reference(data, tmp_path_factory) -> tuple[Path, Path]:
    """Two uninterrupted runs of the reliability tests' config, side by side."""
    from trainer_runs import finish, train_args

    root = tmp_path_factory.mktemp("reference")
    runs = (root / "a", root / "b")
    with ThreadPoolExecutor(2) as pool:
        for proc in pool.map(lambda r: finish(train_args(data, r)), runs):
            assert proc.returncode == 0, proc.stderr
    return runs
