"""The α-UMi protocol strings and parsers (DESIGN §3.4, §3.6, §3.7); no shared data needed."""

import json

import pytest

from glpft import prompts as P

TOOLS = [
    {"Name": "a_for_t", "function": 'does "a" é', "input": {"x": "string, the x"}},
    {"Name": "b_for_t", "function": "does b", "input": {}},
]


def test_templates_are_verbatim_including_typos():
    assert P.TEMPLATES["toolbench_planner"].startswith("You have assess to the following apis:\n{doc}\n")
    assert P.TEMPLATES["toolbench_planner"].endswith("followed by Next: caller or conclusion or give up.")
    assert "Base on the thought make an api call" in P.TEMPLATES["toolbench_caller"]
    assert (
        P.TEMPLATES["toolbench_summarizer"]
        == "Make a conclusion based on the conversation history:\n{history}"
    )
    # only the backbone template ends with a newline
    assert [k for k, v in P.TEMPLATES.items() if v.endswith("\n")] == ["toolbench_backbone"]


def test_tool_doc_uses_python_default_json_dumps():
    doc = P.tool_doc(TOOLS)
    assert doc == json.dumps(TOOLS[0]) + "\n" + json.dumps(TOOLS[1]) + "\n"
    assert "\\u00e9" in doc and '"Name": "a_for_t", ' in doc
    assert P.tool_names(TOOLS) == "a_for_t, b_for_t"


def test_observation_turn_has_no_eos_but_others_do():
    turns = [
        {"from": "user", "value": "q"},
        {"from": "assistant", "value": "t Next: caller."},
        {"from": "caller", "value": "Action: a"},
        {"from": "observation", "value": "obs"},
        {"from": "conclusion", "value": "ans"},
    ]
    assert P.history_text(turns) == (
        "user: q</s>assistant: t Next: caller.</s>caller: Action: a</s>observation: obsconclusion: ans</s>"
    )


def test_caller_prompt_substitutes_in_paper_order():
    text = P.caller_prompt(TOOLS, "user: q</s>", "th")
    assert text.endswith("Action Input: the api call request. caller: ")
    assert "should be exactly in [a_for_t, b_for_t]" in text
    assert (
        "The conversation history is:\nuser: q</s>assistant: th</s>\nThe thought of this step is:\nth\n"
        in text
    )
    assert P.planner_prompt(TOOLS, "h").endswith("give up. assistant: ")
    assert (
        P.summarizer_prompt(TOOLS, "h", "t", speaker="planner")
        == P.TEMPLATES["toolbench_summarizer"].replace("{history}", "hplanner: t</s>") + " conclusion: "
    )


def test_unknown_prompt_type_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown prompt type 'v1'"):
        P.get_template("v1")


def test_strip_marker_removes_only_its_own_marker():
    assert P.strip_marker(" a Next: conclusion. Next: caller.", P.NEXT_CALLER) == "a Next: conclusion."
