"""Scripted agents and an in-memory environment for the search and run-queries tests."""

from __future__ import annotations

import json

from glpft.parsing import finish_arguments
from toolbench_multillm.agents import Action, Task

WEATHER = "get_weather_for_weather"
FORECAST = "get_forecast_for_weather"


class FakeEnv:
    """In-memory environment with ToolBench's status codes for Finish, unknown names and answers."""

    def __init__(self):
        self.functions = [
            {"name": WEATHER, "description": "weather", "parameters": {"type": "object", "properties": {}}},
            {"name": FORECAST, "description": "forecast", "parameters": {"type": "object", "properties": {}}},
            {"name": "Finish", "description": "finish", "parameters": {"type": "object", "properties": {}}},
        ]
        self.prompt_tools = [
            {"Name": WEATHER, "function": "weather of a city", "input": {"city": "string"}},
            {"Name": FORECAST, "function": "forecast of a city", "input": {"city": "string"}},
        ]
        self.calls: list[tuple[str, str]] = []

    def step(self, action: str, action_input: str) -> tuple[str, int]:
        self.calls.append((action, action_input))
        if action == "Finish":
            try:
                data = json.loads(action_input)
            except ValueError:
                return '{error:"must have "return_type""}', 2
            if data.get("return_type") == "give_up_and_restart":
                return '{"response":"chose to give up and restart"}', 4
            return '{"response":"successfully giving the final answer."}', 3
        if action in (WEATHER, FORECAST):
            return json.dumps({"temp": 21, "api": action}), 0
        return json.dumps({"error": f"No such function name: {action}", "response": ""}), 1


def call(name: str, thought: str = "think") -> Action:
    return Action(thought, name, '{"city": "Paris"}', {"planner": thought})


ANSWER = Action("I know it", "Finish", finish_arguments("It is 21 degrees."), {})
GIVE_UP = Action("stuck", "Finish", finish_arguments(None), {})


class ScriptedAgent:
    """Decides from the number of steps so far and how often it was asked from the same state."""

    name = "scripted"

    def __init__(self, policy):
        self.policy = policy
        self.asked: dict[tuple, int] = {}
        self.diversity: list[str | None] = []

    def system_prompt(self, task: Task) -> str:
        return "sys"

    def act(self, task, steps, diversity=None):
        key = tuple(t.action.name for t in steps)
        n = self.asked.get(key, 0)
        self.asked[key] = n + 1
        self.diversity.append(diversity)
        return self.policy(key, n)
