"""Real-time prefill: prompt tokens computed per DFSDT query with the cross-step prefix cache vs without.

    python benchmarks/realtime_prefill.py                   # CPU: a ~20M-parameter random Llama, 6 queries
    python benchmarks/realtime_prefill.py --device cuda --hidden 2048 --layers 22   # GPU, ~1B shape

The α-UMi agent runs DFSDT (``DFS_woFilter_w2``) on StableToolBench's G1 queries
(``../shared/reference/stabletoolbench/solvable_queries/test_instruction/G1_instruction.json``) with
the roles on one local random model (greedy), against a scripted tool backend that answers every call
with a fixed JSON reply. The same queries run twice in one process: with ``ModelGenerator``'s
:class:`~glpft.generation.PrefixCache` (the default) and without it. Printed per path: prompt tokens,
tokens actually prefilled, seconds per query; the ratios; and whether the answers are identical.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_QUERIES = (
    REPO.parent / "shared" / "reference" / "stabletoolbench" / "solvable_queries" / "test_instruction"
    / "G1_instruction.json"
)  # fmt: skip


def build(args, workdir: Path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from glpft.modeling import load_model_and_tokenizer
    from glpft.tiny_model import corpus_texts, make_tiny_model

    tiny = make_tiny_model(workdir / "tok", corpus_texts([args.queries], 300_000), vocab_size=2000)
    _, tok = load_model_and_tokenizer(tiny)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=args.hidden, intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
        num_key_value_heads=max(1, args.hidden // 256), max_position_embeddings=4096,
    )  # fmt: skip
    with torch.device(args.device):
        model = LlamaForCausalLM(config)
    return model.eval(), tok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", default=str(DEFAULT_QUERIES))
    ap.add_argument("--n", type=int, default=6, help="queries to solve")
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--max-queries", type=int, default=8, help="agent steps per query (DFSDT budget)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    if not Path(args.queries).is_file():
        print(f"query file not found: {args.queries}", file=sys.stderr)
        return 2

    import httpx

    from glpft.generation import DecodingConfig
    from toolbench_multillm.agents import AlphaUmiAgent
    from toolbench_multillm.env import ToolClient, ToolEnv
    from toolbench_multillm.generators import ModelGenerator
    from toolbench_multillm.search import Limits, search
    from toolbench_multillm.tools import build_toolset, load_queries

    with tempfile.TemporaryDirectory() as workdir:
        model, tok = build(args, Path(workdir))
    queries = load_queries(args.queries)[: args.n]
    reply = {"error": "", "response": {"results": [{"id": 1, "name": "item", "score": 0.5}] * 4}}
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=reply)))
    client = ToolClient("http://tools.bench/rapidapi", None, http_client=http)
    config = DecodingConfig(max_new_tokens=args.max_new_tokens)
    results = {}
    for name, entries in (("prefix cache", 4), ("no cache", 0)):
        gen = ModelGenerator(model, tok, config, context_length=4096, prefix_cache_entries=entries)
        agent = AlphaUmiAgent(gen, gen, gen)
        answers = []
        start = time.perf_counter()
        for q in queries:
            env = ToolEnv(build_toolset(q), client)
            done = search(agent, env, q.query, "DFS_woFilter_w2", Limits(max_queries=args.max_queries))
            answers.append(json.dumps(done.to_json(q.query)["answer_generation"], sort_keys=True))
        seconds = time.perf_counter() - start
        results[name] = (gen.stats.prompt_tokens, gen.stats.prefilled_tokens, seconds, answers)

    params = sum(p.numel() for p in model.parameters())
    print(
        f"\nreal-time prefill — {args.device}, random Llama {params / 1e6:.1f}M params, {len(queries)} G1 queries,"
    )
    print(
        f"DFS_woFilter_w2 with at most {args.max_queries} agent steps each, {args.max_new_tokens} new tokens per call"
    )
    print(f"{'path':<14} {'prompt tok':>11} {'prefilled':>10} {'s/query':>8}")
    for name, (prompt, prefilled, seconds, _) in results.items():
        print(f"{name:<14} {prompt:>11} {prefilled:>10} {seconds / len(queries):8.2f}")
    on, off = results["prefix cache"], results["no cache"]
    print(f"prefilled tokens, no cache / prefix cache: {off[1] / max(1, on[1]):.2f}x fewer with the cache")
    print(f"wall time per query, no cache / prefix cache: {off[2] / on[2]:.2f}x")
    print(f"identical answers (greedy): {on[3] == off[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
