"""Fixtures of the tool-server tests: the reference answers and a cache seeded from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolbench_multillm.cache import build_cache


@pytest.fixture(scope="module")
def answers_dir(reference_dir) -> Path:
    return reference_dir / "toolbench_data_example/answer"


@pytest.fixture(scope="module")
def seeded_cache_file(answers_dir, tmp_path_factory) -> Path:
    """A SQLite cache built from the reference answers (tests that write to it copy it first)."""
    path = tmp_path_factory.mktemp("tool_cache") / "cache.sqlite"
    build_cache(str(answers_dir), str(path))
    return path
