"""The demo's scenarios: every query template is answered by its reference answer, and answer checking
finds every ground-truth value (numbers as numbers, text as whole words)."""

from __future__ import annotations

import random

import pytest

from toolbench_multillm import demo_scenarios as S

# --- answer checking -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values,answer,ok",
    [
        (["3.11"], "5 km is 3.11 mi.", True),
        (["3.11"], "5 km is 3.1 mi.", False),
        (["212"], "It is 212.0 F.", True),
        (["2102650"], "Paris has 2,102,650 people.", True),
        (["21"], "It is 210 C.", False),
        (["21"], "It is 21.5 C.", False),
        (["-5"], "It is -5 C.", True),
        (["Lima", "17"], "The capital is lima and it is 17 C.", True),
        (["Lima", "17"], "The capital is Lima.", False),
        (["Aqua"], "Made by Aquatix.", False),
        (["17 is prime"], "17 is not prime.", False),
        (["18 is not prime"], "18 is not prime.", True),
        (["2024-03-01"], "The date is 2024-03-01.", True),
        (["3"], "The date is 2024-03-01.", False),
        (["2024"], "The date is 2024-03-01.", False),
        (["101"], "Product P101 is here.", False),
        (["12"], "P101: 12 in stock", True),
        (["x"], None, False),
        ([], "anything", False),
    ],
)
def test_check_answer_looks_for_every_ground_truth_value(values, answer, ok):
    assert S.check_answer({"ground_truth": values}, answer) is ok
    assert S.check_answer(values, answer) is ok


def test_every_query_template_is_answered_by_its_reference_answer():
    rng = random.Random(1)
    for _ in range(400):
        scenario = S.make_scenario(rng)
        assert 1 <= len(scenario.steps) <= 4
        assert scenario.values and S.check_answer(scenario.values, scenario.answer), scenario.query
