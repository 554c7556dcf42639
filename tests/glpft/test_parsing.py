"""The protocol's readers (glpft.parsing): model outputs, Finish arguments, function messages."""

import json

import pytest

from glpft import parsing
from glpft import prompts as P
from glpft.parsing import (
    ABSENT,
    FunctionContent,
    observation_from_content,
    parse_finish,
    parse_function_content,
)


@pytest.mark.parametrize(
    "text, thought, nxt, marker",
    [
        ("go Next: caller. junk", "go Next: caller.", "caller", True),
        ("done Next: conclusion. more", "done Next: conclusion.", "conclusion", True),
        ("x Next: caller. y Next: give up.", "x Next: caller. y Next: give up.", "give up", True),
        ("no marker", "no markerNext: caller.", "caller", False),
    ],
)
def test_planner_output_is_cut_after_its_marker(text, thought, nxt, marker):
    d = parsing.parse_planner_output(text)
    assert (d.thought, d.next, d.had_marker) == (thought, nxt, marker)


def test_clean_generation_maps_empty_and_punctuation_to_none():
    assert parsing.clean_generation(": hi") == "hi"
    assert parsing.clean_generation("  .") == "none"
    assert parsing.clean_generation("") == "none"


def test_parse_step_reads_calls_finishes_and_give_ups():
    call = 'assistant: think Next: caller.</s>caller: Action: a_for_t\nAction Input: {"x": 1}</s>'
    assert parsing.parse_step(call) == parsing.ParsedStep("call", "a_for_t", '{"x": 1}')
    fin = "assistant: ok Next: conclusion.</s>conclusion: the answer</s>"
    assert parsing.parse_step(fin) == parsing.ParsedStep("finish", answer="the answer")
    assert parsing.parse_step("nope Next: give up.").plan == "give up"
    assert parsing.parse_step("asssitant: t</s>caller: nothing here") == parsing.ParsedStep(
        "call", "none", "{}"
    )


def test_parse_backbone_step():
    assert parsing.parse_backbone_step("t\nconclusion: give up.").plan == "give up"
    assert parsing.parse_backbone_step("t\nconclusion: 42").answer == "42"
    assert parsing.parse_backbone_step("t\nAction: a\nAction Input: {}") == parsing.ParsedStep(
        "call", "a", "{}"
    )


def test_split_backbone_output_for_the_agent():
    assert parsing.split_backbone_output("t\nAction: a\nAction Input: {}") == (
        "t",
        "caller",
        "Action: a\nAction Input: {}",
    )
    assert parsing.split_backbone_output("t\nconclusion: 42") == ("t", "conclusion", "42")
    assert parsing.split_backbone_output("t\nconclusion: give up.") == ("t", "give up", None)
    assert parsing.split_backbone_output("just words") == ("just words", None, None)


def test_caller_turn_round_trips_through_parse_action():
    text = P.caller_turn("a_for_t", '{"x": 1}')
    assert text == 'Action: a_for_t\nAction Input: {"x": 1}'
    assert parsing.parse_action(text) == ("a_for_t", '{"x": 1}')


def test_truncated_function_content_is_decoded():
    full = json.dumps({"error": "", "response": 'caf\u00e9 "quoted" ' * 100})
    parsed = parse_function_content(full[:1024] + "...", fallback="decode")
    error, response = parsed.error, parsed.response
    assert error == "" and len(response) > 600  # escapes (\u00e9, \") shrink when decoded
    assert ('café "quoted" ' * 100).startswith(response)
    cut = '{"error": "Message error...", "response": "abc...'
    assert parse_function_content(cut, fallback="decode") == FunctionContent("Message error...", "abc")
    assert parse_function_content("plain text", fallback="decode") is None
    assert parse_function_content({"error": "", "response": {"a": 1}}) == FunctionContent("", {"a": 1})


def test_stage2_observation_falls_back_to_the_raw_text_after_response_paper_parity():
    assert observation_from_content(json.dumps({"error": "", "response": "ok"})) == "ok"
    assert observation_from_content({"response": {"a": 1}}) == '{"a": 1}'
    assert observation_from_content('{"error": "", "response": "cut') == ' "cut'
    assert observation_from_content("no response here") == ""
    assert observation_from_content(None) == ""


@pytest.mark.parametrize(
    "arguments, return_type, answer",
    [
        ('{"return_type": "give_answer", "final_answer": "42"}', "give_answer", "42"),
        ({"return_type": "give_up_and_restart"}, "give_up_and_restart", ABSENT),
        ('{"return_type": "give_answer", "final_answer": "a\nb"}', "give_answer", "a\nb"),  # strict=False
        ('{"return_type": "give_answer", "final_answer": "unterminated', "give_answer", "unterminated"),
        ('not json "return_type": "weird", "x"', "weird", ABSENT),
        ("[1, 2]", ABSENT, ABSENT),
        ("[" * 5000, ABSENT, ABSENT),  # deep nesting never raises
        ('{"return_type": null}', None, ABSENT),
    ],
)
def test_env_finish_arguments_follow_the_original_environment(arguments, return_type, answer):
    call = parse_finish(arguments, fallback="env")
    assert (call.return_type, call.final_answer) == (return_type, answer)


@pytest.mark.parametrize(
    "arguments, gives_up, answer",
    [
        ('{"return_type": "give_answer", "final_answer": "42"}', False, "42"),
        ('{"return_type": "give_answer"}', False, "none"),
        ('{"return_type": "give_answer", "final_answer": {"k": 1}}', False, '{"k": 1}'),
        ("broken give_up_and_restart", True, None),
        ('{"final_answer": "x", "oops"', False, 'x", "oops'),
        ("nothing", False, "the content"),
        ({"return_type": "give_answer", "final_answer": "dict ok"}, False, "dict ok"),  # fixes: crashed
    ],
)
def test_stage2_finish_routes_with_the_preprocessing_fallback(arguments, gives_up, answer):
    call = parse_finish(arguments, fallback="stage2", content="the content")
    assert call.gives_up == gives_up
    if not gives_up:
        assert call.final_answer == answer
