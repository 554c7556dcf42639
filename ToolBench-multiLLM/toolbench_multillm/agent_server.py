"""α-UMi as an OpenAI tool-calling endpoint: ``POST /v1/chat/completions`` with ``messages`` and ``tools``.

    alpha-umi serve-agent --planner_model_path P --caller_model_path C --summarizer_model_path S --port 8100
    alpha-umi serve-agent --model_backend openai --model_base_url http://127.0.0.1:8000/v1 --port 8100

Each request runs one α-UMi step. The messages map onto the α-UMi conversation exactly as the
real-time agent keeps it (the one protocol, ``glpft.prompts``): the first ``user`` message is the
query; an ``assistant`` message with ``tool_calls`` is a planner turn (its ``content``; ``Next:
caller.`` is added when it carries no marker) and a caller turn (``Action: <name>\\nAction Input:
<arguments>``); a ``tool`` message is the observation — its content parsed as JSON when it is a JSON
object or list, then written as the real-time agent writes observations (encoded once); later
``user`` messages are user turns; ``system`` messages are ignored (α-UMi's templates are its own).
The ``tools`` (OpenAI function schemas) become the α-UMi tool entries (``glpft.prompts.tool_entry``).

The planner decides; the reply is an OpenAI chat completion:
- ``Next: caller.`` → ``tool_calls`` with the caller's function name and arguments (``finish_reason:
  "tool_calls"``); ``content`` holds the planner's thought, marker included, so that sending the
  message back reproduces the history;
- ``Next: conclusion.`` → ``content`` is the summarizer's answer (``finish_reason: "stop"``);
- ``Next: give up.`` → ``content`` is the planner's thought, ending with ``Next: give up.`` (the
  documented give-up marker; ``finish_reason: "stop"``).
Sampling settings come from the server's flags (``--decoding``, ``--temperature``), not the request.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from glpft.chat import EndpointUnavailable
from glpft.formats import FormatError, Turn, loads_json
from glpft.parsing import FINISH_NAME, parse_finish
from glpft.prompts import NEXT_CALLER, NEXT_GIVE_UP, NEXT_MARKERS, caller_turn, observation_text, tool_entry
from glpft.remote import CompletionsError
from toolbench_multillm.agent_setup import add_agent_args, build_agent
from toolbench_multillm.agents import Action, AgentError, Step, Task

log = logging.getLogger(__name__)

PROG = "alpha-umi serve-agent"
GIVE_UP_MARKER = NEXT_GIVE_UP


class BadChat(ValueError):
    """A chat request that cannot be mapped onto an α-UMi conversation (400, with the reason)."""


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts
        parts = [p.get("text") for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if len(parts) == len(value):
            return "".join(parts)
    raise BadChat(f"{where}: content should be a string")


def tools_of(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(OpenAI function schemas + Finish-free, α-UMi tool entries) of the request's ``tools``."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        raise BadChat("field 'tools' should be a non-empty list of functions")
    functions = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadChat(f"field 'tools[{i}].function' should be an object with a string 'name'")
        functions.append(fn)
    try:
        entries = [tool_entry(fn, f"tools[{i}].function") for i, fn in enumerate(functions)]
    except FormatError as e:
        raise BadChat(str(e)) from None
    return functions, [e for e in entries if e["Name"] != FINISH_NAME]


def _observation(content: str) -> str:
    """A tool message as the real-time agent's observation: JSON objects and lists as values."""
    value: Any = content
    if content[:1] in "{[":
        try:
            value = loads_json(content, "tool message")
        except FormatError:
            value = content
    return observation_text(value if value != "" else "", "" if value != "" else "empty tool result")


def conversation_of(messages: Any) -> tuple[str, list[Step], list[Turn]]:
    """(query, finished steps, user turns after them) of OpenAI chat messages."""
    if not isinstance(messages, list) or not messages:
        raise BadChat("field 'messages' should be a non-empty list")
    query: str | None = None
    steps: list[Step] = []
    trailing: list[Turn] = []
    pending: Action | None = None
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise BadChat(f"{where}: should be an object with a string 'role'")
        role = msg["role"]
        if role in ("system", "developer"):
            continue
        if pending is not None and role != "tool":
            raise BadChat(f"{where}: a tool call must be followed by its 'tool' result")
        if role == "user":
            text = _text(msg.get("content"), where)
            if query is None:
                query = text
            else:
                trailing.append({"from": "user", "value": text})
        elif role == "assistant":
            if query is None:
                raise BadChat(f"{where}: the conversation must start with the user's query")
            calls = msg.get("tool_calls") or []
            if not isinstance(calls, list) or len(calls) != 1:
                raise BadChat(
                    f"{where}: an assistant turn must carry exactly one tool call (α-UMi calls one at a time)"
                )
            fn = calls[0].get("function") if isinstance(calls[0], dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise BadChat(f"{where}: tool_calls[0].function should be an object with a string 'name'")
            arguments = fn.get("arguments", "{}")
            arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
            thought = _text(msg.get("content"), where).strip() or "none"
            if not any(m in thought for m in NEXT_MARKERS):
                thought = (
                    thought + " " + NEXT_CALLER
                )  # paper parity: the real-time rule for marker-less thoughts
            turns: list[Turn] = [
                *trailing,
                {"from": "assistant", "value": thought},
                {"from": "caller", "value": caller_turn(fn["name"], arguments)},
            ]
            trailing = []
            pending = Action(thought, fn["name"], arguments, turns=turns)
        elif role == "tool":
            if pending is None:
                raise BadChat(f"{where}: a 'tool' message must answer the assistant's tool call")
            steps.append(Step(pending, _observation(_text(msg.get("content"), where)), 0))
            pending = None
        else:
            raise BadChat(f"{where}: unknown role {role!r}")
    if query is None:
        raise BadChat("messages: no user message (the query)")
    if pending is not None:
        raise BadChat("messages: the last tool call has no 'tool' result yet")
    return query, steps, trailing


def run_step(agent: Any, body: dict[str, Any], lock: threading.Lock | None = None) -> dict[str, Any]:
    """One α-UMi step for one chat request: the OpenAI chat-completion object."""
    functions, entries = tools_of(body)
    query, steps, trailing = conversation_of(body.get("messages"))
    task = Task(query, functions, entries, turns_after=trailing)
    if lock is not None:
        with lock:
            action = agent.act(task, steps)
    else:
        action = agent.act(task, steps)
    outputs = action.outputs
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if action.name != FINISH_NAME:
        message["content"] = outputs.get("planner", action.thought)
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": action.name, "arguments": action.arguments},
            }
        ]
        finish = "tool_calls"
    else:
        finish = "stop"
        call = parse_finish(action.arguments)
        if call.gives_up:
            message["content"] = outputs.get("planner", GIVE_UP_MARKER)
        else:
            message["content"] = outputs.get(
                "conclusion", call.final_answer if isinstance(call.final_answer, str) else ""
            )
    prompt_tokens = sum(p.tokens or 0 for p in action.prompts)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "alpha-umi",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": max(0, action.tokens - prompt_tokens),
            "total_tokens": action.tokens,
        },
    }


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}}, status)


def create_app(agent: Any, model_name: str = "alpha-umi") -> FastAPI:
    """The chat-completions app around one agent (tests pass an agent with scripted generators)."""
    app = FastAPI(title="alpha-umi agent", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()  # one step at a time: role models are shared

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "alpha-umi"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        try:
            body = loads_json(await request.body(), "request body")
        except FormatError as e:
            return _error(400, str(e).replace("request body: ", ""))
        if not isinstance(body, dict):
            return _error(400, "the body should be a JSON object")
        if body.get("stream"):
            return _error(400, "stream is not supported by serve-agent")
        try:
            reply = await run_in_threadpool(run_step, agent, body, lock)
        except BadChat as e:
            return _error(400, str(e))
        except (EndpointUnavailable, CompletionsError, AgentError) as e:
            return _error(502, f"a role model failed: {e}", "server_error")
        except Exception as e:  # a defect of ours: one line, no traceback to the client
            log.exception("serve-agent failed on a request")
            return _error(500, f"internal error: {type(e).__name__}", "server_error")
        return JSONResponse(reply)

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description="α-UMi as an OpenAI tool-calling chat endpoint.")
    add_agent_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--served_name", default="alpha-umi", help="the model name the endpoint answers to")
    p.set_defaults(decoding="greedy")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        agent = build_agent(args)
    except (FormatError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(create_app(agent, args.served_name), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
