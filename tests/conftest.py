"""Shared fixtures: the public reference data (skips when absent) and tiny local models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("ALPHA_UMI_REFERENCE", REPO.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """`../shared/reference` beside the checkout; tests using it skip cleanly when it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    return REFERENCE


def _tiny_corpus() -> list[str]:
    """A few KB of protocol-shaped text (project-authored) to train the tiny tokenizer."""
    tools = [
        {
            "Name": "get_weather_for_weather",
            "function": "Get the weather of a city",
            "input": {"city": "string, city name"},
        }
    ]
    return [
        json.dumps(tools),
        "user: What is the weather in Paris?</s>assistant: I should call the weather api. Next: caller.</s>"
        'caller: Action: get_weather_for_weather\nAction Input: {"city": "Paris"}</s>'
        'observation: {"temp": 21}assistant: I know the answer. Next: conclusion.</s>'
        "conclusion: It is 21 degrees in Paris.</s>",
        "I cannot solve this. Next: give up. conclusion: give up.",
    ] * 20


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny Llama + BPE tokenizer (BOS, EOS=</s>, pad) in a local folder."""
    from glpft.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"), _tiny_corpus(), vocab_size=400)


@pytest.fixture(scope="session")
def tiny_model_no_bos_dir(tmp_path_factory) -> Path:
    """The same tiny model with a tokenizer that has neither a BOS nor a pad token."""
    from glpft.tiny_model import make_tiny_model

    return make_tiny_model(
        tmp_path_factory.mktemp("tiny_model_nobos"), _tiny_corpus(), vocab_size=400, bos=False, pad=False
    )
