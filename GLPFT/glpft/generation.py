"""Fast batched generation for static inference: same tokens as one-sample-at-a-time greedy decoding.

``generate(model, prompts, ...)`` takes token-id lists and returns the generated ids (stop token
excluded). What makes it fast, each part keeping greedy outputs equal to ``generate_one_by_one``
(plain ``model.generate`` per sample, the original's batch size 1; tested):

- **length-sorted batches**, left-padded, explicit position ids, one KV cache per batch held in
  preallocated buffers (appending a token writes in place instead of copying the whole cache);
- **shared-prefix KV reuse**: prompts of one *group* (the steps of one trajectory: tool docs + the
  history so far) are prefilled at batch size 1 on a per-group cache that keeps their common prefix,
  so a step only computes the tokens it does not share with the group's previous step; the keys and
  values are then copied right-aligned into the batch cache;
- **finished rows leave the batch** at the step they emit a stop token, and columns that became
  padding for every remaining row are cut off;
- with SDPA attention the 4D masks are built directly (cheap) instead of by transformers' generic code.

Sampling (``DecodingConfig.do_sample``) draws each row from its own seeded ``torch.Generator``, so a
sample's output does not depend on the batch it lands in or on the number of processes.
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)


@dataclass
class DecodingConfig:
    """How tokens are picked. Greedy by default; ``paper()`` gives the original's sampling settings."""

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    @classmethod
    def paper(cls, model, max_new_tokens: int = 512, seed: int = 0) -> DecodingConfig:
        """paper parity: ``do_sample=True`` with the checkpoint's generation config (HF defaults:
        temperature 1.0, top_k 50, top_p 1.0), as the original Trainer-based predict did — but seeded."""
        gc = getattr(model, "generation_config", None)

        def get(name, default):
            value = getattr(gc, name, None) if gc is not None else None
            return default if value is None else value

        return cls(
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=float(get("temperature", 1.0)),
            top_k=int(get("top_k", 50)),
            top_p=float(get("top_p", 1.0)),
            seed=seed,
        )


@dataclass
class GenerationStats:
    """Token accounting of one ``generate`` call (prompt tokens vs tokens actually prefilled)."""

    prompts: int = 0
    prompt_tokens: int = 0
    prefilled_tokens: int = 0
    new_tokens: int = 0
    batches: int = 0
    forward_calls: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def reused_fraction(self) -> float:
        return 1.0 - self.prefilled_tokens / max(1, self.prompt_tokens)


# --- model plumbing (transformers 4.57 … 5.x) ---------------------------------------------------


def _cache_kwarg(model) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache``."""
    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _new_cache(model):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:  # older signature
        return DynamicCache()


class _Runner:
    """Calls the model's forward with a cache, explicit positions and a 2D padding mask.

    With SDPA attention the 4D boolean mask is built here (cheap: a padding row for one-token steps,
    a lower-right causal block for prefix extensions) instead of by transformers' generic mask code,
    which costs more than the attention itself for small models.
    """

    def __init__(self, model, stats: GenerationStats):
        self.model = model
        self.kw = _cache_kwarg(model)
        self.device = next(model.parameters()).device
        self.stats = stats
        self.sdpa = getattr(model.config, "_attn_implementation", None) == "sdpa"

    def _mask4d(self, ids, mask, cache):
        past = cache.get_seq_length() if cache is not None else 0
        q = ids.shape[1]
        if mask is None:
            if past == 0:
                return None  # plain causal prefill: sdpa's is_causal fast path
            causal = torch.ones((q, past + q), dtype=torch.bool, device=ids.device).tril(past)
            return causal[None, None].expand(ids.shape[0], 1, q, past + q)
        if q == 1:
            return mask.bool()[:, None, None, :]
        return mask  # let transformers combine padding and causality

    @torch.inference_mode()
    def __call__(self, ids, positions, mask, cache) -> torch.Tensor:
        """Logits (float32) of the last position of each row."""
        self.stats.forward_calls += 1
        if self.sdpa:
            mask = self._mask4d(ids, mask, cache)
        out = self.model(
            input_ids=ids,
            position_ids=positions,
            attention_mask=mask,
            use_cache=True,
            logits_to_keep=1,
            **{self.kw: cache},
        )
        return out.logits[:, -1, :].float()


def _layers(cache):
    return cache.layers


def _crop(cache, length: int) -> None:
    for layer in _layers(cache):
        if layer.keys is not None and layer.keys.numel():
            layer.keys = layer.keys[..., :length, :]
            layer.values = layer.values[..., :length, :]


def _cut_left(cache, n: int) -> None:
    for layer in _layers(cache):
        layer.cut_left(n)


def _buffer_layer_class():
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        """A cache layer preallocated for the whole generation: appends write in place instead of
        concatenating (``DynamicLayer`` copies the full cache at every step)."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
            """``keys``/``values``: buffers [batch, heads, capacity, head_dim] whose first ``length``
            positions are filled."""
            super().__init__()
            self._k, self._v, self.n = keys, values, length
            self.device = keys.device
            self.is_initialized = True
            self._views()

        def _views(self):
            self.keys = self._k[:, :, : self.n]
            self.values = self._v[:, :, : self.n]

        def update(self, key_states, value_states, *args, **kwargs):
            q = key_states.shape[-2]
            self._k[:, :, self.n : self.n + q] = key_states
            self._v[:, :, self.n : self.n + q] = value_states
            self.n += q
            self._views()
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self._k, self._v = self._k[indices], self._v[indices]
            self._views()

        def cut_left(self, m: int) -> None:
            self._k, self._v = self._k[:, :, m:], self._v[:, :, m:]
            self.n -= m
            self._views()

    return BufferLayer


def _batch_cache(model, buffers: list[tuple[torch.Tensor, torch.Tensor]], length: int):
    """A cache whose layers are the given preallocated buffers, ``length`` positions filled."""
    cls = _buffer_layer_class()
    cache = _new_cache(model)
    cache.layers = [cls(k, v, length) for k, v in buffers]
    if hasattr(cache, "layer_class_to_replicate"):
        cache.layer_class_to_replicate = None
    return cache


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# --- batching -----------------------------------------------------------------------------------


def plan_batches(
    lengths: Sequence[int], groups: Sequence[object] | None, batch_size: int, window: int = 4
) -> list[list[int]]:
    """Prompt indices per batch, each batch's rows in (group, index) order for the prefix chain.

    Whole groups, longest first, fill a window of about ``window * batch_size`` prompts; inside a
    window prompts are sorted by length and cut into batches, so a batch pads little while the steps of
    a trajectory (similar, growing lengths) mostly share a batch and its prefix chain.
    """
    members: dict[object, list[int]] = {}
    for i in range(len(lengths)):
        members.setdefault(groups[i] if groups is not None else ("row", i), []).append(i)
    order = sorted(members.values(), key=lambda m: (-max(lengths[i] for i in m), m[0]))
    rank = {i: r for r, m in enumerate(order) for i in m}
    batches: list[list[int]] = []

    def flush(rows: list[int], final: bool) -> list[int]:
        """Cut full batches from the longest rows; the shortest remainder waits for the next window."""
        rows = sorted(rows, key=lambda i: (-lengths[i], i))
        cut = len(rows) if final else len(rows) - len(rows) % batch_size
        for k in range(0, cut, batch_size):
            batches.append(sorted(rows[k : k + batch_size], key=lambda i: (rank[i], i)))
        return rows[cut:]

    current: list[int] = []
    for m in order:
        current += m
        if len(current) >= window * batch_size:
            current = flush(current, final=False)
    flush(current, final=True)
    return batches


def _pick(logits: torch.Tensor, config: DecodingConfig, generators: list[torch.Generator | None]):
    """Next token per row: argmax (ties → lowest id, as ``torch.argmax`` / HF greedy) or a seeded draw."""
    if not config.do_sample or config.temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits / config.temperature if config.temperature != 1.0 else logits.clone()
    if config.top_k and config.top_k > 0:
        k = min(config.top_k, scores.shape[-1])
        kth = torch.topk(scores, k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if config.top_p < 1.0:
        sorted_scores, sorted_idx = torch.sort(scores, descending=False, dim=-1)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= (1 - config.top_p)
        remove[:, -1] = False  # keep at least one token
        scores = scores.masked_fill(remove.scatter(1, sorted_idx, remove), float("-inf"))
    probs = scores.softmax(dim=-1)
    out = [torch.multinomial(probs[r], 1, generator=generators[r]) for r in range(probs.shape[0])]
    return torch.cat(out)


class PrefixCache:
    """Batch-size-1 KV caches of recent prompts, reused by later prompts that start the same way.

    Prompts of one trajectory share tool docs + history, so a step only prefills the tokens it does not
    share with an earlier prompt (the newest turns, or just the template tail). Within one
    :func:`generate` call prompts of a ``group`` extend that group's entry; an instance passed to
    several calls (``prefix_cache=``) also serves ungrouped prompts from whichever kept prompt shares
    the longest prefix — across the steps of a real-time query, or across requests to a server.
    At most ``max_entries`` prompts are kept (least recently used dropped). One instance belongs to
    one model (and one adapter): its caches hold that model's keys and values.
    """

    def __init__(self, max_entries: int = 16, min_reuse: float = 0.5, enabled: bool = True):
        self.max_entries, self.min_reuse, self.enabled = max_entries, min_reuse, enabled
        self.entries: OrderedDict[object, tuple[object, list[int]]] = OrderedDict()
        self._serial = 0

    def _best(self, need: list[int]) -> tuple[object | None, int]:
        best, best_len = None, 0
        for key, (_, ids) in self.entries.items():
            n = common_prefix_len(ids, need)
            if n > best_len:
                best, best_len = key, n
        return best, best_len

    def extend_to(self, run: _Runner, group: object | None, need: list[int]):
        """Make one cache hold exactly ``need`` (reusing the best kept prefix) and return it."""
        key = group
        if self.enabled and group is None:
            key, _ = self._best(need)
        cache, ids = self.entries.pop(key, (None, [])) if key is not None else (None, [])
        keep = common_prefix_len(ids, need) if (self.enabled and cache is not None) else 0
        if keep < self.min_reuse * len(need):
            keep = 0  # a fresh causal prefill is cheaper than a long masked extension
            if cache is not None and group is None:  # an unrelated prompt: keep the old entry
                self.entries[key] = (cache, ids)
                self.entries.move_to_end(key, last=False)
                cache = None
        if keep == 0:
            cache = _new_cache(run.model)
        elif keep < len(ids):
            _crop(cache, keep)
        if keep < len(need):
            device = run.device
            tokens = torch.tensor([need[keep:]], device=device)
            pos = torch.arange(keep, len(need), device=device)[None]
            run(tokens, pos, None, cache)
            run.stats.prefilled_tokens += len(need) - keep
        if self.enabled:
            if group is None:
                self._serial += 1
                key = ("prompt", self._serial)
            self.entries[key] = (cache, need)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)
        return cache


def _generate_batch(
    run: _Runner,
    chains: PrefixCache,
    seqs: list[list[int]],
    groups: list[object],
    seeds: list[int],
    stop_ids: set[int],
    config: DecodingConfig,
    constrainer=None,
    grammars: list[str | None] | None = None,
) -> list[list[int]]:
    device = run.device
    B = len(seqs)
    lens = [len(s) for s in seqs]
    out: list[list[int]] = [[] for _ in range(B)]
    if config.max_new_tokens <= 0:
        return out

    # 1. every prompt but its last token is prefilled through the prefix chain (batch size 1, no
    #    padding) and copied right-aligned into the batch cache: rows are left-padded to C columns.
    C = max(lens) - 1
    capacity = C + 1 + config.max_new_tokens
    batch_kv = None
    for i in range(B):
        if lens[i] == 1:
            continue
        layers = _layers(chains.extend_to(run, groups[i], seqs[i][:-1]))
        if batch_kv is None:
            batch_kv = [
                (
                    layer.keys.new_zeros((B, layer.keys.shape[1], capacity, layer.keys.shape[3])),
                    layer.values.new_zeros((B, layer.values.shape[1], capacity, layer.values.shape[3])),
                )
                for layer in layers
            ]
        n = lens[i] - 1
        for (bk, bv), layer in zip(batch_kv, layers):
            bk[i, :, C - n : C] = layer.keys[0, :, :n]
            bv[i, :, C - n : C] = layer.values[0, :, :n]
    if batch_kv is None:  # every prompt is one token long: nothing to cache yet
        probe = _new_cache(run.model)
        run(
            torch.tensor([[seqs[0][0]]], device=device),
            torch.zeros((1, 1), dtype=torch.long, device=device),
            None,
            probe,
        )
        batch_kv = [
            (
                layer.keys.new_zeros((B, layer.keys.shape[1], capacity, layer.keys.shape[3])),
                layer.values.new_zeros((B, layer.values.shape[1], capacity, layer.values.shape[3])),
            )
            for layer in _layers(probe)
        ]
    cache = _batch_cache(run.model, batch_kv, C)

    # 2. the last prompt token of every row in one batched step, then decode; finished rows leave
    mask = torch.zeros((B, C + 1), dtype=torch.long)
    for i, n in enumerate(lens):
        mask[i, C + 1 - n :] = 1
    mask = mask.to(device)
    tok = torch.tensor([s[-1] for s in seqs], device=device)
    next_pos = torch.tensor(lens, device=device) - 1
    run.stats.prefilled_tokens += B
    logits = run(tok[:, None], next_pos[:, None], mask, cache)
    next_pos = next_pos + 1

    generators = None
    if config.do_sample:
        generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    active = list(range(B))
    rows = [constrainer.row(g) for g in grammars] if constrainer is not None and grammars else None
    while True:
        if rows is not None:  # each row its own grammar state (glpft.constraints), masked in place
            left = [config.max_new_tokens - len(out[r]) for r in active]
            constrainer.mask(logits, [rows[r] for r in active], left)
        tok = _pick(logits, config, [generators[r] for r in active] if generators else [])
        tok_list = tok.tolist()
        keep = []
        for k, row in enumerate(active):
            t = tok_list[k]
            if rows is not None and rows[row] is not None:
                rows[row].accept(t)
            if t in stop_ids:
                continue
            out[row].append(t)
            if len(out[row]) < config.max_new_tokens:
                keep.append(k)
        if not keep:
            break
        if len(keep) < len(active):
            sel = torch.tensor(keep, device=device)
            cache.batch_select_indices(sel)
            mask, tok, next_pos = mask[sel], tok[sel], next_pos[sel]
            active = [active[k] for k in keep]
            lead = int(mask.argmax(dim=1).min())  # columns that are padding for every remaining row
            if lead > 0:
                _cut_left(cache, lead)
                mask = mask[:, lead:]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
        logits = run(tok[:, None], next_pos[:, None], mask, cache)
        next_pos = next_pos + 1
    run.stats.new_tokens += sum(len(o) for o in out)
    return out


def generate(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    stop_ids: Sequence[int],
    pad_id: int | None = None,
    config: DecodingConfig | None = None,
    batch_size: int = 8,
    groups: Sequence[object] | None = None,
    share_prefix: bool = True,
    window: int = 4,
    seeds: Sequence[int] | None = None,
    stats: GenerationStats | None = None,
    progress: bool = False,
    prefix_cache: PrefixCache | None = None,
    grammars: Sequence[str | None] | None = None,
    constrainer=None,
) -> list[list[int]]:
    """Generated token ids for each prompt (stop token excluded), batched and KV-cached.

    ``groups`` marks prompts that share long prefixes (e.g. the trajectory each step comes from);
    ``seeds`` gives each prompt its sampling seed (default: ``config.seed + index``). ``prefix_cache``
    keeps prompt caches across calls (see :class:`PrefixCache`); by default one lives for this call.
    ``grammars`` (one EBNF text or None per prompt) constrain decoding through ``constrainer`` (a
    :class:`glpft.constraints.Constrainer` of this tokenizer). ``pad_id`` is accepted for symmetry with
    ``generate_one_by_one`` but unused: no pad token is ever fed, padding only exists as masked cache
    columns.
    """
    config = config or DecodingConfig()
    stats = stats if stats is not None else GenerationStats()
    prompts = [list(p) for p in prompts]
    if any(len(p) == 0 for p in prompts):
        raise ValueError("generate: empty prompt (no tokens)")
    seeds = list(seeds) if seeds is not None else [config.seed + i for i in range(len(prompts))]
    stop = set(int(s) for s in stop_ids)
    run = _Runner(model, stats)
    results: list[list[int] | None] = [None] * len(prompts)
    batches = plan_batches([len(p) for p in prompts], groups, max(1, batch_size), window)
    stats.prompts += len(prompts)
    stats.prompt_tokens += sum(len(p) for p in prompts)
    iterator = batches
    if progress:
        from tqdm import tqdm

        iterator = tqdm(batches, desc="generate", unit="batch")
    chains = prefix_cache if prefix_cache is not None else PrefixCache(enabled=share_prefix)
    for batch in iterator:
        stats.batches += 1
        outs = _generate_batch(
            run,
            chains,
            [prompts[i] for i in batch],
            [
                groups[i] if groups is not None else (None if prefix_cache is not None else ("row", i))
                for i in batch
            ],
            [seeds[i] for i in batch],
            stop,
            config,
            constrainer,
            [grammars[i] for i in batch] if grammars is not None else None,
        )
        for i, o in zip(batch, outs):
            results[i] = o
    return results  # type: ignore[return-value]


@torch.inference_mode()
def generate_one_by_one(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    stop_ids: Sequence[int],
    pad_id: int,
    config: DecodingConfig | None = None,
) -> list[list[int]]:
    """Reference path: ``model.generate`` on one unpadded prompt at a time (the original's batch size 1)."""
    from transformers import GenerationConfig

    config = config or DecodingConfig()
    kwargs = {"do_sample": config.do_sample}
    if config.do_sample:
        kwargs.update(temperature=config.temperature, top_k=config.top_k, top_p=config.top_p)
    gen_config = GenerationConfig(
        max_new_tokens=config.max_new_tokens,
        num_beams=1,
        eos_token_id=list(stop_ids),
        pad_token_id=pad_id,
        **kwargs,
    )
    device = next(model.parameters()).device
    stop = set(int(s) for s in stop_ids)
    results = []
    for p in prompts:
        ids = torch.tensor([list(p)], device=device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen_config)
        new = out[0, ids.shape[1] :].tolist()
        cut = next((k for k, t in enumerate(new) if t in stop), len(new))
        results.append(new[:cut])
    return results
