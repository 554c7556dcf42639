"""The role models behind ``alpha-umi serve-models``: loading them and a batching worker around
:func:`glpft.generation.generate`.

Two layouts (DESIGN §6): ONE base model with named LoRA adapters kept unmerged (peft multi-adapter;
``set_adapter`` between batches, the base itself served under ``disable_adapter()``), or full
checkpoints, one model each (names with the same path share it). Every served name has its own
:class:`~glpft.generation.PrefixCache` (its keys and values are that adapter's).

A request is tokenized exactly as the in-process path (``tokenizer(prompt).input_ids``), cut with
:func:`glpft.prompts.truncate_ids` when it asks for ``truncate_prompt_tokens``, and queued; one worker
thread collects queued requests for ``batch_wait_ms`` (up to ``max_batch_size`` rows), runs one
``generate`` per model name and decoding settings, and decodes with ``skip_special_tokens=True``.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glpft.formats import FormatError
from glpft.generation import DecodingConfig, GenerationStats, PrefixCache, generate
from glpft.modeling import (
    LOAD_ERRORS,
    ModelFolderError,
    adapter_base,
    check_model_files,
    first_line,
    load_model_and_tokenizer,
    resolve_model_folder,
    stop_token_ids,
)
from glpft.prompts import truncate_ids

log = logging.getLogger(__name__)

#: What a served name may look like (OpenAI model ids: letters, digits, ``._-:/``).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
SEED_MOD = 2**63


class RequestError(Exception):
    """A request the pool refuses: the HTTP status, a one-line reason, and OpenAI's ``code``/``param``."""

    def __init__(self, status: int, message: str, code: str = "invalid_value", param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


@dataclass(frozen=True)
class SamplingParams:
    """One request's decoding settings (OpenAI completions fields; ``temperature`` 0 is greedy)."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    truncate_prompt_tokens: int | None = None
    grammar: str | None = None  # an EBNF text constraining every completion (glpft.constraints)

    def decoding(self) -> DecodingConfig:
        if self.temperature <= 0:
            return DecodingConfig(max_new_tokens=self.max_tokens)
        top_k = self.top_k if self.top_k > 0 else 0
        return DecodingConfig(self.max_tokens, True, self.temperature, top_k, self.top_p)


@dataclass
class Choice:
    index: int
    text: str
    finish_reason: str  # "stop" (a stop token or string) or "length" (max_tokens reached)
    token_ids: list[int] = field(default_factory=list)


@dataclass
class CompletionResult:
    choices: list[Choice]
    prompt_tokens: int
    completion_tokens: int


@dataclass
class ServedModel:
    """One served name: what ``generate`` runs (for an adapter, the peft model's inner model, whose
    LoRA layers follow ``peft.set_adapter``), its tokenizer and its own prefix cache."""

    name: str
    model: Any
    tokenizer: Any
    path: str
    peft: Any = None  # the PeftModel holding the adapters (adapter layout only)
    adapter: str | None = None  # None under ``peft``: the base with adapters disabled
    parent: str | None = None
    prefix_cache: PrefixCache | None = None
    stats: GenerationStats = field(default_factory=GenerationStats)

    def __post_init__(self):
        self.stop_ids = stop_token_ids(self.tokenizer, self.model)
        self._constrainer = None
        max_pos = getattr(self.model.config, "max_position_embeddings", None)
        self.max_positions = int(max_pos) if max_pos else None

    def constrainer(self):
        """This model's grammar constrainer (built on first use: xgrammar compiles per tokenizer)."""
        if self._constrainer is None:
            from glpft.constraints import Constrainer

            width = self.model.get_output_embeddings().weight.shape[0]
            self._constrainer = Constrainer(self.tokenizer, self.stop_ids, vocab_size=width)
        return self._constrainer

    @contextmanager
    def active(self):
        """The model with this name's adapter switched on (or all adapters off for the base)."""
        if self.peft is None:
            yield
        elif self.adapter is None:
            with self.peft.disable_adapter():
                yield
        else:
            self.peft.set_adapter(self.adapter)
            yield


@dataclass
class _Job:
    served: ServedModel
    rows: list[list[int]]
    seeds: list[int]
    params: SamplingParams
    prompt_tokens: int
    future: Future

    @property
    def key(self) -> tuple:
        c = self.params.decoding()
        sampling = (c.temperature, c.top_k, c.top_p) if c.do_sample else ()
        return (self.served.name, c.max_new_tokens, c.do_sample, sampling)


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cpu`` / ``cuda[:N]`` checked (one-line errors)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    m = re.fullmatch(r"cpu|cuda(?::(\d+))?", device)
    if not m:
        raise FormatError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FormatError(f"--device {device}: no CUDA device is available")
        if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
            raise FormatError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    return device


def resolve_dtype(name: str, device: str):
    """``auto`` → bf16 on a GPU, fp32 on the CPU; else bf16 / fp16 / fp32."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def check_adapter_dir(name: str, path: str | Path) -> Path:
    """A LoRA adapter folder, checked on disk before anything is loaded (one-line errors)."""
    from glpft.lora import is_adapter_dir

    folder = Path(path)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such adapter folder (--adapter {name})")
    if not is_adapter_dir(folder):
        raise ModelFolderError(
            f"{folder}: not a LoRA adapter folder (no adapter_config.json, or a full model: use --model)"
        )
    check_model_files(folder)
    adapter_base(folder)
    return folder


def _load_adapters(model, base_dir: Path, adapters: dict[str, Path]):
    """The base wrapped in a PeftModel holding every adapter, unmerged (one-line errors)."""
    from peft import PeftModel

    for name, folder in adapters.items():
        recorded = adapter_base(folder)
        if Path(recorded).resolve() != base_dir.resolve():
            log.warning("adapter %s was trained on %s; serving it on --base %s", folder, recorded, base_dir)
        try:
            if isinstance(model, PeftModel):
                model.load_adapter(str(folder), adapter_name=name)
            else:
                model = PeftModel.from_pretrained(model, str(folder), adapter_name=name)
        except (*LOAD_ERRORS, RuntimeError) as e:  # RuntimeError: shapes of another base model
            raise ModelFolderError(
                f"{folder}: cannot load the adapter on {base_dir} ({first_line(e)})"
            ) from None
        log.info("loaded adapter %s from %s (unmerged)", name, folder)
    return model


class ModelPool:
    """Served names → models, and the worker that batches their requests (one forward at a time)."""

    def __init__(
        self,
        served: Sequence[ServedModel],
        max_batch_size: int = 8,
        batch_wait_ms: float = 5.0,
        prefix_cache_entries: int = 8,
        context_length: int = 4096,
    ):
        self.models = {s.name: s for s in served}
        self.max_batch_size, self.batch_wait = max(1, max_batch_size), max(0.0, batch_wait_ms) / 1000
        self.context_length = context_length
        for s in served:
            if s.prefix_cache is None and prefix_cache_entries > 0:
                s.prefix_cache = PrefixCache(max_entries=prefix_cache_entries)
        #: rows of every ``generate`` call, in order (how well requests were batched)
        self.batch_sizes: list[int] = []
        self._tok_lock = threading.Lock()  # fast tokenizers are not safe to share between threads
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name="model-pool", daemon=True)
        self._worker.start()

    @classmethod
    def load(
        cls,
        base: str | None = None,
        adapters: dict[str, str] | None = None,
        models: dict[str, str] | None = None,
        base_name: str | None = "backbone",
        device: str = "auto",
        dtype: str = "auto",
        **kwargs: Any,
    ) -> ModelPool:
        """Load ``base`` + named ``adapters`` (unmerged; the base served as ``base_name`` unless it is
        empty) and/or full checkpoints ``models`` (name → folder); one-line ModelFolderErrors."""
        adapters, models = dict(adapters or {}), dict(models or {})
        if adapters and not base:
            raise ModelFolderError("--adapter needs --base (the model the adapters were trained on)")
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        # every folder is checked before anything is loaded (a typo fails in a second, not after a 7B load)
        if base:
            resolve_model_folder(base, use_lora=False)
        folders = {name: check_adapter_dir(name, path) for name, path in adapters.items()}
        for path in models.values():
            resolve_model_folder(path)
        served: list[ServedModel] = []
        if base:
            model, tok = load_model_and_tokenizer(base, use_lora=False, dtype=torch_dtype, device=device)
            peft = _load_adapters(model, Path(base), folders) if adapters else None
            if peft is not None:
                peft.eval()
                peft.to(device)
                inner = peft.get_base_model()
                for name, path in adapters.items():
                    served.append(ServedModel(name, inner, tok, str(path), peft, name, parent=base_name))
            if base_name:
                served.append(
                    ServedModel(base_name, peft.get_base_model() if peft else model, tok, base, peft)
                )
        loaded: dict[str, tuple[Any, Any]] = {}
        for name, path in models.items():
            key = str(Path(path).resolve())
            if key not in loaded:
                loaded[key] = load_model_and_tokenizer(path, dtype=torch_dtype, device=device)
                log.info("loaded %s from %s", name, path)
            served.append(ServedModel(name, *loaded[key], str(path)))
        if not served:
            raise ModelFolderError(
                "nothing to serve: give --base (with --adapter NAME=PATH) or --model NAME=PATH"
            )
        return cls(served, **kwargs)

    @property
    def names(self) -> list[str]:
        return list(self.models)

    def limit(self, name: str) -> int:
        """Most tokens (prompt + completion) a request to ``name`` may span."""
        served = self.models[name]
        return min(self.context_length, served.max_positions or self.context_length)

    def snapshot(self) -> dict[str, Any]:
        """Counters: ``generate`` calls and their mean rows, and each name's token accounting."""
        sizes = list(self.batch_sizes)
        per_name = {
            name: {
                k: getattr(s.stats, k) for k in ("prompts", "prompt_tokens", "prefilled_tokens", "new_tokens")
            }
            for name, s in self.models.items()
        }
        return {
            "generate_calls": len(sizes),
            "mean_batch_size": sum(sizes) / max(1, len(sizes)),
            "models": per_name,
        }

    def submit(self, name: str, prompts: Sequence[str], params: SamplingParams) -> Future:
        """Queue one request; a Future of its :class:`CompletionResult` (:class:`RequestError` here for
        an unknown name, a prompt that encodes to nothing or one too long for the context)."""
        served = self.models.get(name)
        if served is None:
            served_names = ", ".join(self.models)
            raise RequestError(
                404, f"model {name!r} is not served (served: {served_names})", "model_not_found", "model"
            )
        if self._closed:
            raise RequestError(503, "the server is shutting down", "unavailable")
        limit, k = self.limit(name), params.truncate_prompt_tokens
        rows, seeds, prompt_tokens = [], [], 0
        base_seed = params.seed if params.seed is not None else random.randrange(SEED_MOD)
        with self._tok_lock:
            encoded = [served.tokenizer(p).input_ids for p in prompts]
        for i, ids in enumerate(encoded):
            ids = truncate_ids(list(ids), k) if k is not None else list(ids)
            where = f"prompt {i}" if len(prompts) > 1 else "the prompt"
            if not ids:
                raise RequestError(400, f"{where} encodes to no tokens", param="prompt")
            if len(ids) + params.max_tokens > limit:
                raise RequestError(
                    400,
                    f"{where} has {len(ids)} tokens and max_tokens is {params.max_tokens}: {len(ids) + params.max_tokens} "
                    f"> the context length {limit} of model {name!r} (send fewer tokens or truncate_prompt_tokens)",
                    "context_length_exceeded",
                    "prompt",
                )
            prompt_tokens += len(ids)
            for j in range(params.n):  # same seed → same text, whatever else shares the request
                rows.append(ids)
                seeds.append((base_seed + j) % SEED_MOD)
        future: Future = Future()
        self._queue.put(_Job(served, rows, seeds, params, prompt_tokens, future))
        return future

    def complete(
        self, name: str, prompts: Sequence[str], params: SamplingParams | None = None
    ) -> CompletionResult:
        """Blocking :meth:`submit`."""
        return self.submit(name, prompts, params or SamplingParams()).result()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._worker.join(timeout=60)

    # --- the worker ------------------------------------------------------------------------------

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """Jobs queued within ``batch_wait`` of the first (up to ``max_batch_size`` rows); True at close."""
        jobs, rows = [first], len(first.rows)
        deadline = time.monotonic() + self.batch_wait
        while rows < self.max_batch_size:
            left = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            rows += len(job.rows)
        return jobs, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            jobs, stop = self._collect(first)
            groups: dict[tuple, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                self._run(group)
        while True:  # refuse whatever was queued after close
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.set_exception(RequestError(503, "the server is shutting down", "unavailable"))

    def _run(self, jobs: list[_Job]) -> None:
        served, params = jobs[0].served, jobs[0].params
        rows = [r for job in jobs for r in job.rows]
        seeds = [s for job in jobs for s in job.seeds]
        self.batch_sizes.append(len(rows))
        try:
            with served.active():
                outs = generate(
                    served.model,
                    rows,
                    stop_ids=served.stop_ids,
                    config=params.decoding(),
                    batch_size=self.max_batch_size,
                    seeds=seeds,
                    share_prefix=served.prefix_cache is not None,
                    prefix_cache=served.prefix_cache,
                    stats=served.stats,
                    grammars=[params.grammar] * len(rows) if params.grammar else None,
                    constrainer=served.constrainer() if params.grammar else None,
                )
            with self._tok_lock:
                texts = [served.tokenizer.decode(o, skip_special_tokens=True) for o in outs]
        except Exception as e:  # a fault of the server (e.g. out of memory), reported to every request
            log.exception("generate failed for %s", served.name)
            for job in jobs:
                job.future.set_exception(e)
            return
        at = 0
        for job in jobs:
            n = len(job.rows)
            choices = [_choice(i, texts[at + i], outs[at + i], job.params) for i in range(n)]
            at += n
            job.future.set_result(
                CompletionResult(choices, job.prompt_tokens, sum(len(c.token_ids) for c in choices))
            )


def _choice(index: int, text: str, ids: list[int], params: SamplingParams) -> Choice:
    """The text cut before the first stop string (``stop``); else ``length`` iff max_tokens were made."""
    cuts = [text.find(s) for s in params.stop if s and s in text]
    if cuts:
        return Choice(index, text[: min(cuts)], "stop", ids)
    return Choice(index, text, "length" if len(ids) >= params.max_tokens else "stop", ids)


__all__ = [
    "NAME_RE",
    "Choice",
    "CompletionResult",
    "ModelPool",
    "RequestError",
    "SamplingParams",
    "ServedModel",
]
