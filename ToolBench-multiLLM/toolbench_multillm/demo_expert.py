"""The demo's scripted expert: solves a scenario and writes the raw ToolBench answer file (DESIGN §3.1).

``train_messages`` holds one chain per DFS branch — abandoned branches end with
``Finish(give_up_and_restart)`` and the last chain is the chosen one (preprocessing reads only that).
Chosen chains may contain a failed call (missing parameter, invalid value) and its fix; queries about
unknown entities end with a give-up. Thoughts are short templates so a tiny model can learn them.
Every observation comes from ``call_api``; ``replay_mismatches`` checks that a file still agrees.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from glpft.parsing import FINISH_FUNCTION, GIVE_ANSWER, GIVE_UP_RETURN
from toolbench_multillm.demo_apis import API_BY_NAME, TOOLS, DemoApi, api_docs, call_api
from toolbench_multillm.demo_handlers import fmt
from toolbench_multillm.demo_scenarios import Scenario
from toolbench_multillm.demo_tables import CURRENCY_NAMES, LANGUAGES, UNIT_NAMES
from toolbench_multillm.tools import build_api, split_function_name, standardize

SYSTEM_PROMPT = (
    "You are AutoGPT, you can use many tools(functions) to do the following task.\n"
    "First I will give you the task description, and your task start.\n"
    "At each step, you need to give your thought to analyze the status now and what to do next, with a function "
    "call to actually excute your step.\nAfter the call, you will get the call result, and you are now in a new state.\n"
    "Then you will analyze your status now, then decide what to do next...\n"
    "After many (Thought-call) pairs, you finally perform the task, then you can give your finial answer.\n"
    "Remember: \n1.the state change is irreversible, you can't go back to one of the former state, if you want to "
    'restart the task, say "I give up and restart".\n2.All the thought is short, at most in 5 sentence.\n'
    "3.You can do more then one trys, so if your plan is to continusly try some conditions, you can do one of the "
    "conditions per try.\nLet's Begin!\nTask description: You should use functions to help handle the real time user "
    'querys. Remember:\n1.ALWAYS call "Finish" function at the end of the task. And the final answer should contain '
    "enough information to show to the user,If you can't handle the task, or you find that function calls always "
    "fail(the function is not valid now), use function Finish->give_up_and_restart.\n2.Do not use origin tool names, "
    "use only subfunctions' names.\nYou have access of the following tools:\n"
)

#: Wrong spellings of valid values (the "invalid value" mistake the expert sometimes makes first).
_ALIASES = {**UNIT_NAMES, **CURRENCY_NAMES, **LANGUAGES}


@dataclass
class _Expert:
    """Builds the message chains of one scenario; every observation comes from ``call_api``."""

    rng: random.Random
    fix_rate: float
    restart_rate: float
    calls: int = 0

    def assistant(self, content: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        call = {"name": name, "arguments": json.dumps(arguments)}
        return {"role": "assistant", "content": content, "function_call": call}

    def call(
        self, api: DemoApi, args: dict[str, Any], thought: str
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """[assistant call, function observation] and the observation."""
        obs = call_api(api.tool, api.api, args)
        msg = {"role": "function", "name": api.function_name, "content": json.dumps(obs)}
        return [self.assistant(thought, api.function_name, args), msg], obs

    @staticmethod
    def thought(api: DemoApi, args: dict[str, Any]) -> str:
        purpose = api.purpose.format(**{n: fmt(args.get(n, ex)) for n, _, _, ex in api.params})
        return f"I will call {api.function_name} to {purpose}."

    def mistake(self, api: DemoApi, args: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
        """A wrong version of a call and the thought that fixes it, or None when the API takes no input."""
        bad = [(n, v) for n, v in args.items() if isinstance(v, str) and v in _ALIASES]
        if bad and self.rng.random() < 0.5:
            name, value = self.rng.choice(bad)
            fix = f"{_ALIASES[value]} is not a valid {name}. I will call {api.function_name} again with {value}."
            return {**args, name: _ALIASES[value]}, fix
        required = [n for n, _, _, _ in api.required]
        if not required:
            return None
        name = self.rng.choice(required)
        fix = (
            f"The call failed because {name} was missing. I will call {api.function_name} again with {name}."
        )
        return {k: v for k, v in args.items() if k != name}, fix

    @staticmethod
    def abandon(api: DemoApi, args: dict[str, Any]) -> dict[str, Any] | None:
        """Arguments for a doomed first try (a misspelled text argument, else no input), or None."""
        good = call_api(api.tool, api.api, args)
        for name, kind, _, _ in api.required:
            if kind == "STRING" and isinstance(args.get(name), str):
                wrong = {**args, name: args[name] + args[name][-1]}
                if call_api(api.tool, api.api, wrong) != good:
                    return wrong
        return {} if call_api(api.tool, api.api, {}) != good else None

    def finish(self, thought: str, args: dict[str, Any]) -> dict[str, Any]:
        return self.assistant(thought, "Finish", args)

    def chains(self, scenario: Scenario, head: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """All DFS branches: abandoned ones (ending in a give-up) first, the chosen chain last."""
        branches: list[list[dict[str, Any]]] = []
        chain = list(head)
        restart_at = (
            self.rng.randrange(len(scenario.steps))
            if scenario.solvable and self.rng.random() < self.restart_rate
            else -1
        )
        fix_at = (
            self.rng.randrange(len(scenario.steps))
            if scenario.solvable and self.rng.random() < self.fix_rate
            else -1
        )
        for i, (name, args) in enumerate(scenario.steps):
            api = API_BY_NAME[name]
            thought = self.thought(api, args)
            if i == restart_at and (doomed := self.abandon(api, args)) is not None:
                msgs, _ = self.call(api, doomed, thought)
                give_up = self.finish(
                    "The call did not give what I need. I will give up and restart.",
                    {"return_type": GIVE_UP_RETURN},
                )
                branches.append(chain + msgs + [give_up])
            if i == fix_at and (wrong := self.mistake(api, args)) is not None:
                bad_args, fix_thought = wrong
                msgs, _ = self.call(api, bad_args, thought)
                chain += msgs
                thought = fix_thought
            msgs, obs = self.call(api, args, thought)
            chain += msgs
            if obs["error"]:  # an unknown entity: nothing else can work
                value = next(iter(args.values()), "")
                text = f"{value} is unknown to {api.function_name}, so I cannot answer. I will give up and restart."
                return branches + [chain + [self.finish(text, {"return_type": GIVE_UP_RETURN})]]
        args = {"return_type": GIVE_ANSWER, "final_answer": scenario.answer}
        return branches + [chain + [self.finish("I now have the answer.", args)]]


def expert_answer(
    scenario: Scenario, rng: random.Random, fix_rate: float = 0.25, restart_rate: float = 0.15
) -> dict[str, Any]:
    """The raw ToolBench answer file (DESIGN §3.1) of the scripted expert solving ``scenario``."""
    docs = api_docs(scenario.tools)
    functions = [build_api(d).schema for d in docs] + [FINISH_FUNCTION]
    system = SYSTEM_PROMPT + "".join(
        f"{i}.{standardize(tool)}: {TOOLS[tool][1]}\n"
        for i, tool in enumerate(sorted(set(scenario.tools), key=list(TOOLS).index), 1)
    )
    head = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"\n{scenario.query}\nBegin!\n"},
    ]
    expert = _Expert(rng, fix_rate, restart_rate)
    chains = expert.chains(scenario, head)
    final = json.loads(chains[-1][-1]["function_call"]["arguments"])
    return {
        "answer_generation": {
            "valid_data": True,
            "query_count": expert.calls,
            "total_tokens": 0,
            "final_answer": json.dumps(final) if final["return_type"] == GIVE_ANSWER else "",
            "finish_type": "give_answer" if final["return_type"] == GIVE_ANSWER else "give_up",
            "function": functions,
            "chain": [],
            "train_messages": chains,
            "query": scenario.query,
        }
    }


def replay_mismatches(answer: dict[str, Any]) -> list[str]:
    """Re-run every call of every chain against ``call_api``; one line per observation that differs."""
    problems = []
    for b, chain in enumerate(answer["answer_generation"]["train_messages"]):
        for i, msg in enumerate(chain):
            call = msg.get("function_call") if msg["role"] == "assistant" else None
            if not call or call["name"] == "Finish":
                continue
            api, tool = split_function_name(call["name"])
            want = json.dumps(call_api(tool, api, call["arguments"]))
            nxt = chain[i + 1] if i + 1 < len(chain) else {}
            if nxt.get("role") != "function" or nxt.get("content") != want or nxt.get("name") != call["name"]:
                problems.append(f"chain {b} message {i + 1}: {nxt.get('content')!r} != {want!r}")
    return problems
