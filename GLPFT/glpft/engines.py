"""Static inference engines: role models loaded on demand, prompts encoded and cut to the budget, and
generation with the built-in batched KV-cache engine (``hf``) or vLLM (optional).

A :data:`GenerateFn` takes a role and its steps' prompts and returns cleaned generations; the steps'
``index`` and ``group`` give each prompt its sampling seed and its prefix-sharing group.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from glpft import prompts as P
from glpft.dist import is_rank0
from glpft.parsing import clean_generation
from glpft.steps import StaticStep

log = logging.getLogger(__name__)

#: generate(role, steps, prompts) -> decoded, cleaned outputs
GenerateFn = Callable[[str, Sequence[StaticStep], Sequence[P.Prompt]], list[str]]

#: Offset of each role in the per-sample seed (outputs do not depend on batching or process count).
ROLE_SEED = {"planner": 0, "caller": 1, "summarizer": 2, "backbone": 3}


def encode_prompt(tokenizer, prompt: P.Prompt, max_len: int, truncation: str = "left") -> list[int]:
    """Token ids of a prompt (with the tokenizer's BOS, if any), cut to ``max_len`` tokens.

    ``left`` (paper parity) keeps the last ``max_len`` ids, BOS and tool docs going first;
    ``history`` drops the oldest history instead and keeps the BOS, tool docs and instructions.
    """
    ids = tokenizer.encode(prompt.text)
    if len(ids) <= max_len:
        return ids
    if truncation == "history" and prompt.history:
        head_ids = tokenizer.encode(prompt.head)
        tail_ids = tokenizer.encode(prompt.tail, add_special_tokens=False)
        budget = max_len - len(head_ids) - len(tail_ids)
        if budget > 0:
            hist = tokenizer.encode(prompt.history, add_special_tokens=False)
            return head_ids + hist[len(hist) - budget :] + tail_ids
    return P.truncate_ids(ids, max_len)


class RoleModels:
    """Loads role models on demand; frees those no later role needs unless ``keep_all``.

    ``specs`` maps a role to ``(model folder, use_lora)``.
    """

    def __init__(
        self,
        specs: dict[str, tuple[str, bool]],
        device,
        dtype=None,
        attn_implementation: str | None = None,
        keep_all: bool = False,
    ):
        self.specs, self.device, self.dtype = specs, device, dtype
        self.attn_implementation, self.keep_all = attn_implementation, keep_all
        self.loaded: dict[tuple[str, bool], tuple[Any, Any]] = {}

    def get(self, role: str, later_roles: Sequence[str] = ()):
        import torch

        from glpft.modeling import load_model_and_tokenizer

        key = self.specs[role]
        needed = {key} | {self.specs[r] for r in later_roles}
        if not self.keep_all:
            for k in [k for k in self.loaded if k not in needed]:
                del self.loaded[k]
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if key not in self.loaded:
            log.info("loading %s model from %s", role, key[0])
            self.loaded[key] = load_model_and_tokenizer(
                key[0], key[1], dtype=self.dtype, device=self.device,
                attn_implementation=self.attn_implementation,
            )  # fmt: skip
        return self.loaded[key]


def make_generate_fn(
    models: RoleModels,
    role_order: Sequence[str],
    *,
    backend: str = "hf",
    decoding: str = "greedy",
    max_new_tokens: int = 512,
    seed: int = 42,
    max_input_length: int = 3750,
    truncation: str = "left",
    batch_size: int = 8,
    share_prefix: bool = True,
    bf16: bool = False,
    fp16: bool = False,
    on_encoded: Callable[[str, StaticStep, P.Prompt, int | None], None] | None = None,
    remote: Any = None,
    constrained: str = "off",
    server: str = "serve-models",
) -> GenerateFn:
    """The GenerateFn of ``backend``: tokenize, generate, decode, clean.

    ``on_encoded(role, step, prompt, n)`` sees each prompt and the number of ids fed to the model
    (prompt logs). ``backend="openai"`` sends the prompts to ``remote`` (a
    :class:`glpft.remote.CompletionsBackend`) as the model named by the role's spec. ``constrained``
    (off / caller / all) constrains the caller (and the planner) by their grammars
    (:mod:`glpft.constraints`), in the engine or as ``server``'s structured-output fields; the returned
    function's ``changed`` counts, per role, the outputs the constraint changed (engine only).
    """
    from collections import Counter

    from glpft import constraints as C

    constrainers: dict[int, Any] = {}

    def grammars(role: str, steps: Sequence[StaticStep]) -> list[str | None] | None:
        gs = [C.role_grammar(constrained, role, s.tools) for s in steps]
        return gs if any(g is not None for g in gs) else None

    from glpft.generation import DecodingConfig, generate
    from glpft.modeling import stop_token_ids

    def run_remote(role: str, steps: Sequence[StaticStep], prompts: Sequence[P.Prompt]) -> list[str]:
        if decoding == "paper":  # the checkpoint's generation config lives on the server: HF defaults
            config = DecodingConfig.paper(SimpleNamespace(generation_config=None), max_new_tokens, seed)
        else:
            config = DecodingConfig(max_new_tokens=max_new_tokens, seed=seed)
        seeds = [seed * 1_000_003 + 4 * s.index + ROLE_SEED[role] for s in steps]
        gs = grammars(role, steps)
        start = time.perf_counter()
        outs = remote.complete(
            models.specs[role][0], [p.text for p in prompts], max_tokens=max_new_tokens,
            temperature=config.temperature if config.do_sample else 0.0,
            top_p=config.top_p if config.do_sample else 1.0, top_k=config.top_k if config.do_sample else None,
            seeds=seeds, truncate_prompt_tokens=max_input_length, grammars=gs, server=server,
        )  # fmt: skip
        log.info("%s: %d samples in %.1fs (remote)", role, len(steps), time.perf_counter() - start)
        if gs:
            run.constrained[role] += sum(g is not None for g in gs)
        if on_encoded is not None:
            for step, prompt, o in zip(steps, prompts, outs):
                on_encoded(role, step, prompt, o.prompt_tokens)
        return [clean_generation(o.text) for o in outs]

    def run(role: str, steps: Sequence[StaticStep], prompts: Sequence[P.Prompt]) -> list[str]:
        if backend == "openai":
            return run_remote(role, steps, prompts)
        later = list(role_order[role_order.index(role) + 1 :])
        if backend == "vllm":  # vLLM loads the weights itself: only tokenizer + config here
            from transformers import GenerationConfig

            from glpft.modeling import load_tokenizer

            path, use_lora = models.specs[role]
            tokenizer = load_tokenizer(path, use_lora)
            try:
                gen_config = GenerationConfig.from_pretrained(path)
            except OSError:
                gen_config = GenerationConfig()
            model = SimpleNamespace(generation_config=gen_config)
        else:
            model, tokenizer = models.get(role, later)
        ids = [encode_prompt(tokenizer, p, max_input_length, truncation) for p in prompts]
        if on_encoded is not None:
            for step, prompt, x in zip(steps, prompts, ids):
                on_encoded(role, step, prompt, len(x))
        if decoding == "paper":
            config = DecodingConfig.paper(model, max_new_tokens, seed)
        else:
            config = DecodingConfig(max_new_tokens=max_new_tokens, seed=seed)
        # one seed per (sample, role): outputs do not depend on batching or the number of processes
        seeds = [seed * 1_000_003 + 4 * s.index + ROLE_SEED[role] for s in steps]
        stop = stop_token_ids(tokenizer, model if backend == "hf" else None)
        start = time.perf_counter()
        if backend == "vllm":
            path = models.specs[role][0]
            outs = _vllm_generate(path, ids, config, seeds, stop, seed, bf16, fp16)
        else:
            gs = grammars(role, steps)
            con = None
            if gs:
                if id(tokenizer) not in constrainers:
                    width = model.get_output_embeddings().weight.shape[0]
                    constrainers[id(tokenizer)] = C.Constrainer(tokenizer, stop, vocab_size=width)
                con = constrainers[id(tokenizer)]
                before = con.changed_rows
            outs = generate(
                model, ids, stop_ids=stop, pad_id=tokenizer.pad_token_id, config=config,
                batch_size=batch_size, groups=[s.group for s in steps],
                share_prefix=share_prefix, seeds=seeds, progress=is_rank0(), grammars=gs, constrainer=con,
            )  # fmt: skip
            if con is not None:
                run.changed[role] += con.changed_rows - before
                run.constrained[role] += sum(g is not None for g in gs)
        log.info("%s: %d samples in %.1fs", role, len(steps), time.perf_counter() - start)
        return [clean_generation(tokenizer.decode(o, skip_special_tokens=True)) for o in outs]

    run.changed, run.constrained = Counter(), Counter()
    return run


def _vllm_generate(path, ids, config, seeds, stop, seed, bf16, fp16) -> list[list[int]]:
    """vLLM backend (optional dependency); the same prompts, decoding settings and per-sample seeds."""
    from vllm import LLM, SamplingParams

    dtype = "bfloat16" if bf16 else ("float16" if fp16 else "auto")
    llm = LLM(model=path, dtype=dtype, seed=seed, enable_prefix_caching=True)
    params = [
        SamplingParams(
            temperature=config.temperature if config.do_sample else 0.0,
            top_k=config.top_k if (config.do_sample and config.top_k > 0) else -1,
            top_p=config.top_p if config.do_sample else 1.0,
            max_tokens=config.max_new_tokens,
            stop_token_ids=list(stop),
            seed=s,
        )
        for s in seeds
    ]
    outs = llm.generate([{"prompt_token_ids": p} for p in ids], params)
    result = [list(o.outputs[0].token_ids) for o in outs]
    del llm, outs  # free the GPU for the next role
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return [r[: next((k for k, t in enumerate(r) if t in stop), len(r))] for r in result]
