"""Local causal LMs as the agents' generators (``glpft.generation`` underneath), and loading them.

Real-time prompts are fitted to the context exactly as the original's ``generate_stream``: the prompt's
ids are left-truncated to the last ``context_length - max_new_tokens - 8`` ids, BOS included in what may
be cut (DESIGN §4.2); ``keep_bos=True`` keeps a leading BOS instead (not the paper's behaviour).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from glpft.parsing import cut_eos
from glpft.prompts import prompt_budget, truncate_ids
from toolbench_multillm.agents import Completion

log = logging.getLogger(__name__)


class ModelGenerator:
    """A local causal LM as an agent :class:`~toolbench_multillm.agents.Generator`.

    Each prompt's sampling seed is derived from its text and how often that text was seen, so DFSDT
    siblings differ and runs are reproducible. Calls are serialised (one model, many worker threads).
    A :class:`~glpft.generation.PrefixCache` of the last ``prefix_cache_entries`` prompts lets each
    step prefill only what it does not share with an earlier prompt (the history grows by one step;
    a DFSDT sibling repeats its parent's prompt); 0 turns it off. ``stats`` counts prompt tokens
    against tokens actually prefilled.
    """

    def __init__(
        self,
        model,
        tokenizer,
        config=None,
        context_length: int = 4096,
        batch_size: int = 8,
        seed: int = 0,
        keep_bos: bool = False,
        prefix_cache_entries: int = 4,
    ):
        from glpft.generation import DecodingConfig, GenerationStats, PrefixCache
        from glpft.modeling import stop_token_ids

        self.model, self.tokenizer = model, tokenizer
        self.config = config or DecodingConfig()
        max_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None) or context_length
        self.context_length = min(context_length, int(max_pos))
        self.batch_size = batch_size
        self.seed = seed
        self.keep_bos = keep_bos
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.prefix_cache = (
            PrefixCache(max_entries=prefix_cache_entries) if prefix_cache_entries > 0 else None
        )
        self.stats = GenerationStats()
        self._constrainer = None
        self._seen: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def budget(self) -> int:
        """Prompt ids that fit: ``context_length - max_new_tokens - 8``."""
        return prompt_budget(self.context_length, self.config.max_new_tokens)

    def encode(self, prompt: str) -> list[int]:
        """The ids fed to the model for ``prompt`` (the tokenizer's BOS, then left truncation)."""
        ids = self.tokenizer(prompt).input_ids
        return truncate_ids(ids, self.budget, self.tokenizer.bos_token_id, self.keep_bos)

    def _seed(self, prompt: str) -> int:
        digest = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:4], "little")
        n = self._seen.get(digest, 0)
        self._seen[digest] = n + 1
        return (self.seed * 1_000_003 + digest + n * 7919) % (2**31)

    def constrainer(self):
        """The grammar constrainer of this tokenizer (built on first use)."""
        if self._constrainer is None:
            from glpft.constraints import Constrainer

            width = self.model.get_output_embeddings().weight.shape[0]
            self._constrainer = Constrainer(self.tokenizer, self.stop_ids, vocab_size=width)
        return self._constrainer

    def generate(self, prompts: list[str], grammars: list[str | None] | None = None) -> list[Completion]:
        from glpft.generation import generate

        if grammars is not None and not any(g is not None for g in grammars):
            grammars = None
        with self._lock:
            con = self.constrainer() if grammars is not None else None
            before = con.changed_rows if con is not None else 0
            full = [self.tokenizer(p).input_ids for p in prompts]
            ids = [truncate_ids(x, self.budget, self.tokenizer.bos_token_id, self.keep_bos) for x in full]
            seeds = [self._seed(p) for p in prompts]
            out = generate(
                self.model,
                ids,
                stop_ids=self.stop_ids,
                pad_id=self.tokenizer.pad_token_id,
                config=self.config,
                batch_size=self.batch_size,
                seeds=seeds,
                share_prefix=self.prefix_cache is not None,
                prefix_cache=self.prefix_cache,
                stats=self.stats,
                grammars=grammars,
                constrainer=con,
            )
            # exact for one prompt (the agents' case); for several, "some row changed"
            changed = (con.changed_rows > before) if con is not None else None
        return [
            Completion(
                cut_eos(self.tokenizer.decode(o, skip_special_tokens=True)).strip(),
                prompt_tokens=len(x),
                completion_tokens=len(o),
                dropped_tokens=len(f) - len(x),
                changed_by_grammar=changed if grammars is not None and grammars[k] is not None else None,
            )
            for k, (f, x, o) in enumerate(zip(full, ids, out))
        ]


# --- loading -------------------------------------------------------------------------------------


def torch_dtype(name: str, device: str):
    """``auto`` → bf16 on a GPU, fp32 on the CPU; else bf16 / fp16 / fp32."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def load_generators(
    specs: dict[str, tuple[str, bool, str]],
    config: Any,
    dtype: str = "auto",
    context_length: int = 4096,
    seed: int = 0,
    keep_bos: bool = False,
) -> dict[str, ModelGenerator]:
    """role → generator for ``{role: (path, use_lora, device)}``; roles with the same spec share one model."""
    from glpft.modeling import load_model_and_tokenizer

    loaded: dict[tuple[str, bool, str], ModelGenerator] = {}
    out = {}
    for role, spec in specs.items():
        if spec not in loaded:
            path, use_lora, device = spec
            log.info("loading %s model from %s on %s", role, path, device)
            model, tok = load_model_and_tokenizer(
                path, use_lora, dtype=torch_dtype(dtype, device), device=device
            )
            loaded[spec] = ModelGenerator(
                model, tok, config, context_length=context_length, seed=seed, keep_bos=keep_bos
            )
        out[role] = loaded[spec]
    return out


class RemoteGenerator:
    """A role model behind an OpenAI-compatible completions endpoint (``alpha-umi serve-models``,
    vLLM, SGLang) as an agent :class:`~toolbench_multillm.agents.Generator`: the same prompts, the same
    context cut (the server keeps the last ``context_length - max_new_tokens - 8`` ids), seeded the
    same way as :class:`ModelGenerator`. Concurrent agents share one instance; the server batches."""

    def __init__(
        self,
        backend: Any,
        model: str,
        config=None,
        context_length: int = 4096,
        seed: int = 0,
        server: str = "serve-models",
    ):
        from glpft.generation import DecodingConfig

        self.backend, self.model, self.server = backend, model, server
        self.config = config or DecodingConfig()
        self.context_length, self.seed = context_length, seed
        self._seen: dict[int, int] = {}
        self._lock = threading.Lock()

    _seed = ModelGenerator._seed

    def generate(self, prompts: list[str], grammars: list[str | None] | None = None) -> list[Completion]:
        c = self.config
        with self._lock:
            seeds = [self._seed(p) for p in prompts]
        outs = self.backend.complete(
            self.model,
            prompts,
            max_tokens=c.max_new_tokens,
            temperature=c.temperature if c.do_sample else 0.0,
            top_p=c.top_p if c.do_sample else 1.0,
            top_k=c.top_k if c.do_sample else None,
            seeds=seeds,
            truncate_prompt_tokens=prompt_budget(self.context_length, c.max_new_tokens),
            grammars=grammars,
            server=self.server,
        )
        return [Completion(cut_eos(o.text).strip(), o.prompt_tokens, o.completion_tokens) for o in outs]
