"""Role models behind an OpenAI-compatible ``/v1/completions`` endpoint: ``alpha-umi serve-models``,
vLLM (``--enable-lora --lora-modules planner=… caller=… summarizer=…``), SGLang (``--lora-paths``) or
ms-swift (``swift deploy --adapters …``). The prompts are exactly the in-process ones, sent as text;
the role is the request's ``model`` name.

Over-long prompts are cut by the server the same way the in-process engines cut them — their last
``truncate_prompt_tokens`` ids (vLLM's parameter; ``serve-models`` honours it too) — and requests are
sent concurrently so that the server can batch them.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from glpft.chat import ChatClient, EndpointUnavailable


@dataclass(frozen=True)
class RemoteCompletion:
    """One completion: its text and the server's token counts."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


class CompletionsError(RuntimeError):
    """The endpoint answered without a usable completion (the message names the model)."""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StructuredOutputsIgnored(CompletionsError):
    """A constrained request came back with text its grammar forbids: the server ignored the field."""


class CompletionsBackend:
    """Sends prompts to ``<base_url>/completions``; one request per prompt, ``concurrency`` at a time."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 3,
        concurrency: int = 8,
        http_client: Any = None,
    ):
        self.client = ChatClient(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
            name="model server",
        )
        self.concurrency = max(1, concurrency)

    def __repr__(self) -> str:
        return f"CompletionsBackend(url={self.client.public_url!r})"

    def one(self, model: str, prompt: str, **params: Any) -> RemoteCompletion:
        body = self.client.completions(prompt, model, **params)
        try:
            choice = body["choices"][0]
            text = choice["text"]
        except (KeyError, IndexError, TypeError):
            raise CompletionsError(
                f"{self.client.public_url}: model {model!r} answered without choices[0].text"
            ) from None
        if not isinstance(text, str):
            raise CompletionsError(
                f"{self.client.public_url}: model {model!r} answered a non-text completion"
            )
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return RemoteCompletion(
            text,
            _int(usage.get("prompt_tokens")),
            _int(usage.get("completion_tokens")),
            choice.get("finish_reason") if isinstance(choice, dict) else None,
        )

    def complete(
        self,
        model: str,
        prompts: Sequence[str],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        seeds: Sequence[int] | None = None,
        truncate_prompt_tokens: int | None = None,
        grammars: Sequence[str | None] | None = None,
        server: str = "serve-models",
    ) -> list[RemoteCompletion]:
        """One completion per prompt (greedy at ``temperature`` 0). ``grammars`` (one EBNF text or None
        per prompt) are sent in ``server``'s structured-output fields
        (:func:`glpft.constraints.server_params`), and every constrained text is checked against its
        grammar: a server that ignored the field raises :class:`StructuredOutputsIgnored`. Raises
        :class:`EndpointUnavailable` or :class:`CompletionsError` — a result resting on a failed
        server is not a result."""
        from glpft.constraints import allows_prefix, server_params

        extra = [server_params(g, server) if g else None for g in grammars] if grammars else None
        params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p}
        if top_k is not None and top_k > 0:
            params["top_k"] = top_k
        if truncate_prompt_tokens is not None:
            params["truncate_prompt_tokens"] = truncate_prompt_tokens

        def ask(i: int) -> RemoteCompletion:
            more = {"seed": seeds[i]} if seeds is not None and temperature > 0 else {}
            if extra is not None and extra[i]:
                more.update(extra[i])
            return self.one(model, prompts[i], **params, **more)

        if len(prompts) <= 1:
            outs = [ask(i) for i in range(len(prompts))]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
                outs = list(pool.map(ask, range(len(prompts))))
        for g, o in zip(grammars or (), outs):
            if g and not allows_prefix(g, o.text):
                field = ", ".join(server_params(g, server))
                raise StructuredOutputsIgnored(
                    f"{self.client.public_url}: model {model!r} answered text its grammar forbids "
                    f"({o.text[:60]!r}…): the server ignored the structured-output field {field} "
                    f"(--structured_outputs {server}); pick the value for this server (vllm, vllm-legacy, "
                    "sglang, serve-models) or one that supports grammars"
                )
        return outs


__all__ = [
    "CompletionsBackend",
    "CompletionsError",
    "EndpointUnavailable",
    "RemoteCompletion",
    "StructuredOutputsIgnored",
]
