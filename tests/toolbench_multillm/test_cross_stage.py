"""One step, every path: training data, static inference and the real-time agent build the same prompts.

Gold trajectories from the shared reference data are replayed through preprocessing (training inputs),
static inference (planner, caller and summarizer inputs) and the real-time α-UMi agent (scripted
generators and a scripted environment); prompts are compared string for string, up to the documented
differences (the static path's ``planner: `` speaker; hallucinated calls left out of training caller
histories). A second set of tests spells the original ``collab_agent_v3`` inside its search loop
independently and checks our agent against it, observation text and context cut included.
"""

from __future__ import annotations

import json

import httpx
import pytest

from glpft import prepro
from glpft import prompts as P
from glpft.steps import build_steps, route
from toolbench_multillm.agents import AlphaUmiAgent, Completion, Task
from toolbench_multillm.env import ToolClient, ToolEnv
from toolbench_multillm.search import Limits, search
from toolbench_multillm.tools import toolset_from_functions


class Replay:
    """A generator that answers from a queue and records every prompt it was given."""

    def __init__(self, outputs=()):
        self.outputs, self.prompts = list(outputs), []

    def generate(self, prompts):
        self.prompts += prompts
        return [self.outputs.pop(0) if self.outputs else "" for _ in prompts]


class GoldEnv:
    """Returns the gold observations in order; Finish answers as ToolBench's environment does."""

    def __init__(self, tools, observations):
        self.prompt_tools = tools
        self.functions = [{"name": t["Name"]} for t in tools] + [{"name": "Finish"}]
        self.observations = list(observations)

    def step(self, action, action_input):
        if action == "Finish":
            if "give_up_and_restart" in action_input:
                return '{"response":"chose to give up and restart"}', 4
            return '{"response":"successfully giving the final answer."}', 3
        if not self.observations:  # the replayed part is over
            return '{"error": "end of replay", "response": ""}', 1
        return self.observations.pop(0), 0


def _stage2(reference_dir):
    path = reference_dir / "alpha_umi" / "train-example" / "raw_data" / "raw_data_stage_2.json"
    return json.loads(path.read_text())


def _replay_script(conv):
    """(planner outputs, caller outputs, summarizer outputs, observations) of one gold conversation.

    Real time has one user turn, the query: a later user turn (a DFS note ToolBench recorded in its
    chain) ends the replayable part, and so does a generation real time cannot produce (the agent
    strips every generation, as the original did, so a gold thought starting with a space ends it).
    """
    planner, caller, summarizer, observations = [], [], [], []
    users = [i for i, t in enumerate(conv) if t["from"] == "user"]
    if users[:1] != [0]:
        return None
    for i, t in enumerate(conv):
        generated = t["from"] in ("assistant", "caller", "conclusion")
        if i > 0 and (t["from"] == "user" or (generated and t["value"] != t["value"].strip())):
            conv = conv[:i]
            break
    for i, t in enumerate(conv):
        nxt = conv[i + 1] if i + 1 < len(conv) else None
        if t["from"] == "assistant":
            planner.append(t["value"])
        elif t["from"] == "caller":
            if nxt is None or nxt["from"] != "observation":
                return None
            caller.append(t["value"])
        elif t["from"] == "observation":
            observations.append(t["value"])
        elif t["from"] == "conclusion":
            summarizer.append(t["value"])
    return planner, caller, summarizer, observations


def test_planner_prompts_are_identical_in_training_static_and_real_time(reference_dir):
    replayed = 0
    for rec in _stage2(reference_dir):
        conv, tools = rec["conversations"], rec["tools"]
        training = prepro.role_samples(rec)
        static = build_steps([rec])
        # training and static: the same planner input for every step (the static path has no prefix)
        assert [s["input"] for s in training["planner"]] == [s.prompt.text for s in static]
        script = _replay_script(conv)
        if script is None:
            continue
        planner, caller, summarizer = (Replay(x) for x in script[:3])
        agent = AlphaUmiAgent(planner, caller, summarizer)
        n = len(script[0])
        search(agent, GoldEnv(tools, script[3]), rec["instruction"], "CoT@1", Limits(max_depth=3 * n))
        assert planner.prompts[:n] == [s.prompt.text for s in static[:n]]
        replayed += n
    assert replayed >= 40


def test_caller_and_summarizer_prompts_match_across_paths_up_to_the_static_speaker(reference_dir):
    checked = {"caller": 0, "summarizer": 0, "real time": 0}
    for rec in _stage2(reference_dir):
        conv, tools = rec["conversations"], rec["tools"]
        training = prepro.role_samples(rec)
        hallucinated = any(P.HALLUCINATED_CALL in t["value"] for t in conv if t["from"] == "caller")
        static = build_steps([rec])
        for step in static:
            j = len(step.history)
            route(step, conv[j]["value"])
        static_next = {s.route: [] for s in static}
        for s in static:
            static_next[s.route].append(s.next_prompt.text if s.next_prompt else None)
        # training inputs with the static path's speaker for the thought turn = static inputs
        for role, route_name in (("caller", "caller"), ("summarizer", "conclusion")):
            if role == "caller" and hallucinated:
                continue  # training caller histories leave hallucinated calls out (documented)
            expected = []
            for sample in training[role]:
                thought = sample["history"][-1]["value"]
                turn = P.render_turn("assistant", thought)
                head, sep, tail = sample["input"].rpartition(turn)
                assert sep, "the training caller/summarizer history ends with the planner's thought"
                expected.append(head + P.render_turn("planner", thought) + tail)
            assert static_next.get(route_name, []) == expected
            checked[role] += len(expected)
        # real time: the same texts with "assistant: " (what training data says)
        script = _replay_script(conv)
        if script is None or hallucinated:
            continue
        planner, caller, summarizer = (Replay(x) for x in script[:3])
        agent = AlphaUmiAgent(planner, caller, summarizer)
        search(
            agent,
            GoldEnv(tools, script[3]),
            rec["instruction"],
            "CoT@1",
            Limits(max_depth=3 * len(script[0])),
        )
        n_calls, n_answers = len(script[1]), len(script[2])
        assert caller.prompts[:n_calls] == [s["input"] for s in training["caller"][:n_calls]]
        assert summarizer.prompts[:n_answers] == [s["input"] for s in training["summarizer"][:n_answers]]
        checked["real time"] += n_calls + n_answers
    assert checked["caller"] > 20 and checked["summarizer"] > 5 and checked["real time"] > 20


def test_static_backbone_steps_are_the_training_backbone_samples(reference_dir):
    for rec in _stage2(reference_dir):
        training = prepro.role_samples(rec)["backbone"]
        static = build_steps([rec], "backbone")
        assert [(s.prompt.text, s.reference) for s in static] == [(t["input"], t["target"]) for t in training]


# --- the original's real-time agent, spelled independently ------------------------------------------


def original_history(messages):
    """CollbaAgentV3.parse: assistant/user turns end with </s>, observations do not; others dropped."""
    text = ""
    for m in messages:
        if m["role"] == "assistant":
            text += "assistant: " + m["value"] + "</s>"
        elif m["role"] == "user":
            text += "user: " + m["value"] + "</s>"
        elif m["role"] == "observation":
            text += "observation: " + m["value"]
    return text


def original_prompt(role, tools, history, planner_prediction=None):
    """CollbaAgentV3.prediction: {doc}, {tool_names}, then {thought} and the dispatched {history}."""
    docs = "".join(json.dumps(t) + "\n" for t in tools)
    names = ", ".join(t["Name"] for t in tools)
    text = P.TEMPLATES[f"toolbench_{role}"].replace("{doc}", docs).replace("{tool_names}", names)
    if role == "planner":
        return text.replace("{history}", history) + " assistant: "
    text = text.replace("{thought}", planner_prediction)
    text = text.replace("{history}", history + "assistant: " + planner_prediction + "</s>")
    return text + (" caller: " if role == "caller" else " conclusion: ")


def original_observation(reply, max_len=1024):
    """rapidapi_wrapper._step + step: json.dumps of the reply's response as received, then the cut."""
    response = reply["response"] if reply["response"] != "" else {"message": reply["error"]}
    obs = json.dumps(response)
    return obs[:max_len] + "..." if len(obs) > max_len else obs


TOOLS_FUNCS = [
    {
        "name": "search_for_shop",
        "description": "search",
        "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "query"}}},
    },
    {"name": "list_for_shop", "description": "list", "parameters": {"type": "object", "properties": {}}},
]
REPLIES = [
    {"error": "", "response": {"items": [{"name": "Café", "price": 3}], "note": 'say "hi"'}},  # object
    {"error": "", "response": [1, "two", {"three": 3.0}]},  # list
    {"error": "", "response": 'plain "quoted" text\nwith a newline'},  # string
    {"error": "Message error...", "response": ""},  # empty response → {"message": error}
    {"error": "", "response": {"blob": "x" * 3000}},  # longer than max_observation_length
]
PLANNER = [
    "I search first. Next: caller.",
    "Now the list. Next: caller. trailing junk",
    "Search again. Next: caller.",
    "no marker here",  # real time appends " Next: caller."
    "Once more. Next: caller.",
    "I have it. Next: conclusion.",
]
CALLER = [
    'Action: search_for_shop\nAction Input: {"q": "café"}',
    "Action: list_for_shop\nAction Input: {}",
    'Action: search_for_shop\nAction Input: {"q": "b"}',
    "Action: list_for_shop\nAction Input: {}",
    'Action: search_for_shop\nAction Input: {"q": "c"}',
]


def _scripted_env(replies):
    queue = list(replies)
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=queue.pop(0))))
    toolset = toolset_from_functions(TOOLS_FUNCS, category="Shop")
    return ToolEnv(toolset, ToolClient("http://tools.test/rapidapi", None, http_client=http)), toolset


def test_real_time_prompts_equal_the_original_agents_string_for_string():
    env, toolset = _scripted_env(REPLIES)
    planner, caller, summarizer = Replay(PLANNER), Replay(CALLER), Replay(["The answer is 3."])
    done = search(
        AlphaUmiAgent(planner, caller, summarizer), env, "What does café cost?", "CoT@1", Limits(40)
    )
    tools = toolset.prompt_tools

    messages = [{"role": "user", "value": "What does café cost?"}]
    expected = {"planner": [], "caller": [], "summarizer": []}
    for k, out in enumerate(PLANNER):
        history = original_history(messages)
        expected["planner"].append(original_prompt("planner", tools, history))
        if "Next: conclusion." in out:
            pred = out[: out.index("Next: conclusion.") + len("Next: conclusion.")]
            expected["summarizer"].append(original_prompt("summarizer", tools, history, pred))
            break
        if "Next: caller." in out:
            pred = out[: out.index("Next: caller.") + len("Next: caller.")]
        else:
            pred = out + " Next: caller."
        expected["caller"].append(original_prompt("caller", tools, history, pred))
        messages.append({"role": "assistant", "value": pred + "</s>caller: " + CALLER[k]})
        messages.append({"role": "observation", "value": original_observation(REPLIES[k])})
    assert planner.prompts == expected["planner"]
    assert caller.prompts == expected["caller"]
    assert summarizer.prompts == expected["summarizer"]
    # the observations the answer file records are the original's too
    chain = done.to_json("q")["answer_generation"]["train_messages"][-1]
    assert [m["content"] for m in chain if m["role"] == "function"] == [
        original_observation(r) for r in REPLIES
    ]


@pytest.mark.parametrize(
    "response, text",
    [
        ("sunny", '"sunny"'),
        ({"items": [1, 2]}, '{"items": [1, 2]}'),
        ([{"a": "é"}], '[{"a": "\\u00e9"}]'),
        ({}, "{}"),
        (None, "null"),
        ("", '{"message": "Message error..."}'),
    ],
)
def test_observations_are_json_encoded_exactly_once_fixes_double_encoding(response, text):
    env, _ = _scripted_env([{"error": "Message error..." if response == "" else "", "response": response}])
    assert env.step("list_for_shop", "{}")[0] == text
    assert P.observation_text(response, "Message error...") == text


def test_dfsdt_prompts_are_the_originals_of_each_tree_path_without_its_diversity_turns():
    # root → a call → give up: DFSDT climbs back to the root and asks for a sibling there
    planner = Replay(["a. Next: caller.", "stuck. Next: give up.", "other. Next: give up."])
    caller = Replay(["Action: list_for_shop\nAction Input: {}"])
    env, toolset = _scripted_env(REPLIES[:1])
    search(AlphaUmiAgent(planner, caller, Replay()), env, "q?", "DFS_woFilter_w2", Limits())
    tools = toolset.prompt_tools
    root = [{"role": "user", "value": "q?"}]
    after_call = root + [
        {"role": "assistant", "value": "a. Next: caller.</s>caller: Action: list_for_shop\nAction Input: {}"},
        {"role": "observation", "value": original_observation(REPLIES[0])},
    ]
    # fixes: the original also put its DFS diversity prompt into the sibling's history as a user turn
    assert planner.prompts == [
        original_prompt("planner", tools, original_history(root)),
        original_prompt("planner", tools, original_history(after_call)),
        original_prompt("planner", tools, original_history(root)),
    ]


def test_real_time_context_cut_keeps_the_last_ids_bos_included_as_the_original(tiny_model_dir):
    from glpft.generation import DecodingConfig
    from glpft.modeling import load_model_and_tokenizer
    from toolbench_multillm.generators import ModelGenerator

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    config = DecodingConfig(max_new_tokens=4)
    prompt = "user: " + "weather in Paris and more " * 40 + "</s> assistant: "
    ids = tok(prompt).input_ids
    budget = 128 - 4 - 8  # the original: context - max_new_tokens - 8
    assert len(ids) > budget and ids[0] == tok.bos_token_id
    gen = ModelGenerator(model, tok, config, context_length=128)
    assert gen.encode(prompt) == ids[-budget:]  # BOS is cut like any other id (paper parity)
    (c,) = gen.generate([prompt])
    assert isinstance(c, Completion) and c.prompt_tokens == budget and c.dropped_tokens == len(ids) - budget
    keep = ModelGenerator(model, tok, config, context_length=128, keep_bos=True)
    assert keep.encode(prompt) == [tok.bos_token_id] + ids[-(budget - 1) :]
    short = "user: hi</s> assistant: "
    assert gen.encode(short) == tok(short).input_ids  # prompts that fit are untouched


def test_task_prompt_tools_come_from_the_environment():
    env, toolset = _scripted_env([])
    task = Task("q", env.functions, env.prompt_tools)
    assert task.prompt_tools == toolset.prompt_tools and task.functions[-1]["name"] == "Finish"
