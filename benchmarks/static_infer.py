"""Static-inference generation speed: one sample at a time (the original) vs the batched engine.

    python benchmarks/static_infer.py                       # CPU, tiny model, first 48 planner steps
    python benchmarks/static_infer.py --llama-1b --steps 64 --batch-size 16   # GPU, random ~1B Llama

Prompts are the planner inputs of the first ``--steps`` steps of the paper's out-of-domain test set
(``../shared/reference/alpha_umi/test/out_of_domain.json``), truncated to 3750 tokens as in the paper.
Every path generates exactly ``--max-new-tokens`` tokens (stop tokens disabled) so the work is equal.
Paths, timed in one run (min over ``--repeats``, interleaved; the machine may be shared and noisy):

- ``one-by-one``: ``model.generate`` per prompt, batch size 1 (what the original runs);
- ``batched``: length-sorted left-padded batches with finished-row pruning, no prefix reuse;
- ``batched+prefix``: the same plus KV reuse of the prefix shared by steps of one trajectory
  (what ``alpha-umi infer`` runs).

Prints samples/s, the speed-up ratios and whether greedy outputs are identical to one-by-one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEST = REPO.parent / "shared" / "reference" / "alpha_umi" / "test" / "out_of_domain.json"


def build_model(args, workdir: str):
    from glpft.modeling import load_model_and_tokenizer
    from glpft.tiny_model import corpus_texts, make_tiny_model

    if args.model:
        return load_model_and_tokenizer(args.model, device=args.device)
    tiny = make_tiny_model(Path(workdir) / "tiny", corpus_texts([args.test_file], 300_000), vocab_size=1000)
    if not args.llama_1b:
        return load_model_and_tokenizer(tiny, device=args.device)
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tokenizer = load_model_and_tokenizer(tiny)
    torch.manual_seed(0)
    config = LlamaConfig(  # TinyLlama-1.1B shape, randomly initialised
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=4096,
    )
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.eval()
    return model, tokenizer


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-file", default=str(DEFAULT_TEST))
    ap.add_argument("--model", help="model folder (default: a tiny model built here)")
    ap.add_argument("--llama-1b", action="store_true", help="random ~1B Llama in bf16 (GPU)")
    ap.add_argument("--steps", type=int, default=48, help="planner steps (prompts) to generate for")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-input-length", type=int, default=3750)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not os.path.isfile(args.test_file):
        print(f"test file not found: {args.test_file}", file=sys.stderr)
        return 2

    from glpft.engines import encode_prompt
    from glpft.generation import DecodingConfig, GenerationStats, generate, generate_one_by_one
    from glpft.steps import build_steps, read_test_records

    with tempfile.TemporaryDirectory() as workdir:
        model, tokenizer = build_model(args, workdir)
    records = read_test_records(args.test_file, limit=args.steps)  # ≥ 1 step per trajectory
    samples = build_steps(records)[: args.steps]
    prompts = [encode_prompt(tokenizer, s.prompt, args.max_input_length, "left") for s in samples]
    groups = [s.group for s in samples]
    config = DecodingConfig(max_new_tokens=args.max_new_tokens)
    never = [-1]  # no stop token: every path generates exactly max_new_tokens
    pad = tokenizer.pad_token_id

    paths = {
        "one-by-one": lambda: generate_one_by_one(model, prompts, stop_ids=never, pad_id=pad, config=config),
        "batched": lambda: generate(
            model, prompts, stop_ids=never, pad_id=pad, config=config, batch_size=args.batch_size,
            groups=groups, share_prefix=False,
        ),
        "batched+prefix": lambda: generate(
            model, prompts, stop_ids=never, pad_id=pad, config=config, batch_size=args.batch_size,
            groups=groups, share_prefix=True, stats=stats,
        ),
    }  # fmt: skip
    generate(
        model, prompts[:2], stop_ids=never, pad_id=pad, config=DecodingConfig(max_new_tokens=2)
    )  # warm-up
    best: dict[str, float] = {}
    outputs: dict[str, list] = {}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            stats = GenerationStats()
            seconds, out = timed(fn)
            best[name] = min(best.get(name, float("inf")), seconds)
            outputs[name] = out

    n = len(prompts)
    device = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    params = sum(p.numel() for p in model.parameters())
    print(f"\nstatic inference generation — {device}, model {params / 1e6:.1f}M params")
    print(
        f"{n} planner steps from {len(set(groups))} trajectories, prompt tokens mean "
        f"{sum(map(len, prompts)) / n:.0f} (max {max(map(len, prompts))}), {args.max_new_tokens} new tokens each, "
        f"batch size {args.batch_size}; prefix reuse skips {stats.reused_fraction:.0%} of prompt tokens"
    )
    print(f"{'path':<16} {'seconds':>8} {'samples/s':>10} {'speed-up':>9}  greedy == one-by-one")
    base = best["one-by-one"]
    for name in paths:
        same = outputs[name] == outputs["one-by-one"]
        print(f"{name:<16} {best[name]:8.2f} {n / best[name]:10.2f} {base / best[name]:8.2f}x  {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
