"""Real-time agents: α-UMi routing and histories, the backbone agent, the OpenAI agent, garbage outputs."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from glpft import prompts as P
from glpft.parsing import FINISH_NAME as FINISH
from toolbench_multillm.agents import (
    Action,
    AlphaUmiAgent,
    BackboneAgent,
    OpenAIAgent,
    Step,
    Task,
)

TOOLS = [
    {
        "Name": "get_weather_for_weather",
        "function": "Get the weather of a city",
        "input": {"city": "string, city"},
    }
]
FUNCTIONS = [
    {
        "name": "get_weather_for_weather",
        "description": "weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "optional": [],
        },
    },
    {"name": "Finish", "description": "finish", "parameters": {"type": "object", "properties": {}}},
]
TASK = Task("What is the weather in Paris?", FUNCTIONS, TOOLS)


class Scripted:
    """A generator that answers from a list and records its prompts."""

    def __init__(self, *outputs: str):
        self.outputs = list(outputs)
        self.prompts: list[str] = []

    def generate(self, prompts: list[str]) -> list[str]:
        self.prompts.extend(prompts)
        return [self.outputs.pop(0) if self.outputs else "" for _ in prompts]


def test_collab_agent_routes_planner_thought_to_caller_with_assistant_history():
    planner = Scripted("I should call the weather api. Next: caller. trailing junk")
    caller = Scripted('Action: get_weather_for_weather\nAction Input: {"city": "Paris"}')
    summarizer = Scripted()
    agent = AlphaUmiAgent(planner, caller, summarizer)
    action = agent.act(TASK, [])
    thought = "I should call the weather api. Next: caller."
    assert planner.prompts == [P.planner_prompt(TOOLS, "user: What is the weather in Paris?</s>")]
    assert caller.prompts == [P.caller_prompt(TOOLS, "user: What is the weather in Paris?</s>", thought)]
    assert (
        "</s>assistant: " + thought + "</s>" + "\nThe thought of this step is:\n" + thought
        in caller.prompts[0]
    )
    assert summarizer.prompts == []
    assert (action.name, action.arguments) == ("get_weather_for_weather", '{"city": "Paris"}')
    assert action.thought == "I should call the weather api."
    assert action.outputs["planner"] == thought


def test_collab_agent_uses_its_three_role_models_and_summarizer_template_fixes_unset_attributes_and_prompt_key():
    planner = Scripted("done Next: conclusion.")
    caller = Scripted()
    summarizer = Scripted("It is 21 degrees.")
    action = AlphaUmiAgent(planner, caller, summarizer).act(TASK, [])
    assert action.name == FINISH
    assert json.loads(action.arguments) == {"return_type": "give_answer", "final_answer": "It is 21 degrees."}
    history = "user: What is the weather in Paris?</s>assistant: done Next: conclusion.</s>"
    assert summarizer.prompts == [
        P.summarizer_prompt(TOOLS, "user: What is the weather in Paris?</s>", "done Next: conclusion.")
    ]
    assert (
        summarizer.prompts[0]
        == P.TEMPLATES["toolbench_summarizer"].replace("{history}", history) + " conclusion: "
    )
    assert caller.prompts == []


def test_collab_agent_give_up_becomes_finish_give_up_and_restart():
    action = AlphaUmiAgent(Scripted("no tool fits. Next: give up. more"), Scripted(), Scripted()).act(
        TASK, []
    )
    assert action.name == FINISH
    assert json.loads(action.arguments) == {"return_type": "give_up_and_restart"}
    assert action.thought == "no tool fits."


def test_collab_history_after_a_step_is_the_training_format():
    agent = AlphaUmiAgent(Scripted("x Next: conclusion."), Scripted(), Scripted("ok"))
    call = 'Action: get_weather_for_weather\nAction Input: {"city": "Paris"}'
    step = Action(
        "t",
        "get_weather_for_weather",
        '{"city": "Paris"}',
        {"planner": "t Next: caller.", "caller": call},
        turns=[{"from": "assistant", "value": "t Next: caller."}, {"from": "caller", "value": call}],
    )
    history = agent.history(TASK, [Step(step, '{"temp": 21}', 0)])
    assert history == (
        "user: What is the weather in Paris?</s>assistant: t Next: caller.</s>"
        'caller: Action: get_weather_for_weather\nAction Input: {"city": "Paris"}</s>observation: {"temp": 21}'
    )
    agent.act(TASK, [Step(step, '{"temp": 21}', 0)])
    assert agent.planner.prompts[0] == P.planner_prompt(TOOLS, history)


def test_planner_output_without_marker_goes_to_caller_with_marker_appended():
    caller = Scripted("Action: get_weather_for_weather")
    action = AlphaUmiAgent(Scripted("just a thought"), caller, Scripted()).act(TASK, [])
    assert action.outputs["planner"] == "just a thought Next: caller."
    assert (action.name, action.arguments) == ("get_weather_for_weather", "{}")


def test_planner_retries_an_empty_generation_at_most_five_times():
    planner = Scripted("", ".", " ", ",", "")
    action = AlphaUmiAgent(planner, Scripted("garbage"), Scripted()).act(TASK, [])
    assert len(planner.prompts) == 5
    assert action.outputs["planner"] == "none Next: caller."
    assert action.name == "none"  # the environment answers "no such function"


def test_train_prefix_is_put_before_every_role_prompt():
    planner, caller = Scripted("a Next: caller."), Scripted("Action: x")
    AlphaUmiAgent(planner, caller, Scripted(), prefix="system: ").act(TASK, [])
    assert planner.prompts[0].startswith("system: You have assess")
    assert caller.prompts[0].startswith("system: You have assess")


def test_garbage_generations_never_raise():
    rng = random.Random(0)
    alphabet = 'abc :{}"\n</s>Next: caller.conclusion.give up.Action Input:Action:'
    for _ in range(200):
        outs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(8)]
        agent = AlphaUmiAgent(Scripted(*outs), Scripted(*outs[::-1]), Scripted(*outs))
        action = agent.act(TASK, [Step(Action(None, "x", "{", {}), "obs", 1)])
        assert isinstance(action.name, str) and isinstance(action.arguments, str)
        b = BackboneAgent(Scripted(outs[0])).act(TASK, [])
        assert isinstance(b.name, str) and isinstance(b.arguments, str)


def test_backbone_agent_parses_call_conclusion_and_give_up():
    model = Scripted('Call it.\nAction: get_weather_for_weather\nAction Input: {"city": "Paris"}')
    agent = BackboneAgent(model)
    a = agent.act(TASK, [])
    assert (a.thought, a.name, a.arguments) == ("Call it.", "get_weather_for_weather", '{"city": "Paris"}')
    assert model.prompts[0] == P.backbone_prompt(TOOLS, "user: What is the weather in Paris?</s>")
    history = agent.history(TASK, [Step(a, "sunny", 0)])
    assert history == (
        "user: What is the weather in Paris?</s>assistant: Call it.\nAction: get_weather_for_weather\n"
        'Action Input: {"city": "Paris"}</s>observation: sunny'
    )
    c = BackboneAgent(Scripted("Done.\nconclusion: sunny")).act(TASK, [])
    assert json.loads(c.arguments) == {"return_type": "give_answer", "final_answer": "sunny"}
    g = BackboneAgent(Scripted("Stuck.\nconclusion: give up.")).act(TASK, [])
    assert json.loads(g.arguments) == {"return_type": "give_up_and_restart"}


def test_openai_agent_sends_tools_and_parses_tool_calls_without_leaking_the_key():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request, body))
        return httpx.Response(
            200,
            json={
                "choices": [
                    {
                        "message": {
                            "role": "assistant",
                            "content": "calling",
                            "tool_calls": [
                                {
                                    "id": "c",
                                    "type": "function",
                                    "function": {
                                        "name": "get_weather_for_weather",
                                        "arguments": '{"city": "Paris"}',
                                    },
                                }
                            ],
                        }
                    }
                ],
                "usage": {"total_tokens": 42},
            },
        )

    http = httpx.Client(transport=httpx.MockTransport(handler))
    agent = OpenAIAgent("http://llm.test/v1/", "m", api_key="sk-secret", http_client=http)
    first = Action("t", "get_weather_for_weather", "{}", {})
    action = agent.act(TASK, [Step(first, "obs", 0)], diversity="[tried x]")
    request, body = seen[0]
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-secret"
    assert "sk-secret" not in repr(agent)
    assert all("optional" not in t["function"]["parameters"] for t in body["tools"])
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert "[tried x]" in body["messages"][-1]["content"]
    assert (action.name, action.arguments, action.tokens) == (
        "get_weather_for_weather",
        '{"city": "Paris"}',
        42,
    )
    # the diversity note is request-only: the next request without it has no trailing user turn
    agent.act(TASK, [Step(first, "obs", 0)])
    assert seen[1][1]["messages"][-1]["role"] == "tool"


class GrammarScripted(Scripted):
    """A scripted generator that also records the grammars it was asked to follow."""

    def __init__(self, *outputs):
        super().__init__(*outputs)
        self.grammars = []

    def generate(self, prompts, grammars=None):
        self.grammars.append(grammars)
        return super().generate(prompts)


def test_constrained_agent_passes_grammars_only_to_the_constrained_roles():
    from glpft.constraints import role_grammar

    for mode, planner_has in (("caller", False), ("all", True)):
        planner = GrammarScripted("call it. Next: caller.")
        caller = GrammarScripted("Action: get_weather_for_weather\nAction Input: {}")
        agent = AlphaUmiAgent(planner, caller, GrammarScripted(), constrained=mode)
        agent.act(TASK, [])
        required = {"get_weather_for_weather": ["city"]}  # from the function schema
        assert caller.grammars == [[role_grammar(mode, "caller", TOOLS, required)]]
        assert (planner.grammars[0] is not None) == planner_has
        assert agent.constraint_counts.constrained["caller"] == 1
    plain = GrammarScripted("x Next: caller.")
    AlphaUmiAgent(plain, GrammarScripted("Action: x"), GrammarScripted()).act(TASK, [])
    assert plain.grammars == [None]  # off: generators are called exactly as before


def test_required_inputs_come_from_the_schemas_under_either_spelling():
    from toolbench_multillm.agents import required_inputs

    assert required_inputs(TASK) == {"get_weather_for_weather": ["city"]}
    entry = {"Name": "f", "function": "", "input": {"From City": "string", "when": "string"}}
    schema = {"name": "f", "parameters": {"type": "object", "properties": {}, "required": ["from_city"]}}
    assert required_inputs(Task("q", [schema], [entry])) == {"f": ["From City"]}
    assert required_inputs(Task("q", [{"name": "f"}], [entry])) == {}  # no schema says: all optional


@pytest.mark.slow
def test_real_time_caller_under_its_grammar_only_calls_offered_functions(tiny_model_dir):
    from glpft.generation import DecodingConfig
    from glpft.modeling import load_model_and_tokenizer
    from toolbench_multillm.generators import ModelGenerator

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    gen = ModelGenerator(model, tok, DecodingConfig(max_new_tokens=48), context_length=1024)
    agent = AlphaUmiAgent(gen, gen, gen, constrained="caller")
    for _ in range(3):
        action = agent.act(TASK, [])
        assert action.name in ("get_weather_for_weather", FINISH)
    counts = agent.constraint_counts
    assert counts.constrained.get("caller", 0) >= 1 and counts.changed["caller"] >= 1
