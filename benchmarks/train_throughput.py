"""GLPFT training throughput: the original pad-to-4096 recipe vs dynamic padding vs packing.

    python benchmarks/train_throughput.py                      # CPU, tiny model, 48 real role samples
    python benchmarks/train_throughput.py --device cuda --samples 512 --hidden 1024 --layers 8

Rows are real role samples (``../shared/reference/alpha_umi/train-example/train_*.json``, all four
roles), tokenised by a tokenizer trained on that text, so their token lengths follow the real prompts.
The same samples are trained (forward + backward + AdamW step, tiny Llama) in one run with:

- ``pad-to-max``: every sample padded to ``--max-len`` (4096), random order — the original recipe;
- ``dynamic``: length-grouped batches padded to their longest sample (``alpha-umi train`` default);
- ``packing``: samples packed into rows of ``--max-len`` tokens (``--packing``).

Steps of the three modes run round-robin (each mode on its own copy of the model), so that load on a
shared machine hits all of them alike. Prints, per mode, real (non-pad) tokens per second and the pad
fraction, then the speed-up ratios over pad-to-max. Dynamic padding gets better with more samples
(the length-grouped sampler sorts within megabatches of up to 50 batches). The goal of issue 3 is dynamic or packing ≥ 3× pad-to-max.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "reference" / "alpha_umi" / "train-example"
ROLES = ("backbone", "planner", "caller", "summarizer")


def load_rows(folder: Path, n: int, seed: int) -> list[dict]:
    rows = [r for role in ROLES for r in json.loads((folder / f"train_{role}.json").read_text())]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def batches(mode: str, ds, packed, batch_size: int, packed_batch_size: int, seed: int) -> list[list]:
    """Index lists per step: random order for pad-to-max, length-grouped for dynamic, rows for packing."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    if mode == "packing":
        order = list(range(len(packed)))
        random.Random(seed).shuffle(order)
        return [
            [packed[i] for i in order[k : k + packed_batch_size]]
            for k in range(0, len(order), packed_batch_size)
        ]
    if mode == "dynamic":
        gen = torch.Generator().manual_seed(seed)
        order = list(LengthGroupedSampler(batch_size, lengths=ds.lengths, generator=gen))
    else:
        order = list(range(len(ds)))
        random.Random(seed).shuffle(order)
    return [[ds[i] for i in order[k : k + batch_size]] for k in range(0, len(order), batch_size)]


def timed_step(model, opt, collator, step: list, device: str) -> tuple[float, int, int]:
    """(seconds, real tokens, padded positions) of one forward + backward + AdamW step."""
    items = [x for row in step for x in (row if isinstance(row, list) else [row])]
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    batch = collator(step)
    loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, sum(len(x["input_ids"]) for x in items), batch["input_ids"].numel()


def run_interleaved(model, modes: dict, device: str) -> dict[str, list[float]]:
    """Run the modes' steps round-robin (each on its own model copy) so that load changes on a
    shared machine hit every mode alike; returns [seconds, real tokens, positions] per mode."""
    copies = {m: copy.deepcopy(model) for m in modes}
    opts = {m: torch.optim.AdamW(copies[m].parameters(), lr=1e-4) for m in modes}
    for m, (collator, steps) in modes.items():  # warm-up: allocations, kernels
        timed_step(copies[m], opts[m], collator, steps[0], device)
    totals = {m: [0.0, 0, 0] for m in modes}
    for i in range(max(len(steps) for _, steps in modes.values())):
        for m, (collator, steps) in modes.items():
            if i < len(steps):
                for k, v in enumerate(timed_step(copies[m], opts[m], collator, steps[i], device)):
                    totals[m][k] += v
    return totals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train_{role}.json")
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=4, help="samples per step (pad-to-max, dynamic)")
    ap.add_argument("--packed-batch-size", type=int, default=1, help="packed rows per step")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"reference data not found at {args.data}", file=sys.stderr)
        return 1

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from glpft.data import GLPFTCollator, PackedDataset, RoleDataset, SampleEncoder
    from glpft.tiny_model import corpus_texts, make_tiny_model

    rows = load_rows(args.data, args.samples, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        files = [args.data / f"train_{r}.json" for r in ROLES]
        path = make_tiny_model(
            Path(tmp) / "m", corpus_texts(files, 1_000_000), args.vocab, args.hidden, args.layers,
            max_positions=args.max_len,
        )  # fmt: skip
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(args.device)
    model.config.use_cache = False
    model.train()
    torch.manual_seed(args.seed)

    ds = RoleDataset(rows, SampleEncoder(tok, args.max_len))
    packed = PackedDataset(ds, args.max_len)
    chars = sum(len(r["input"]) + len(r["target"]) for r in rows)
    print(
        f"{len(ds)} samples, {sum(ds.lengths)} tokens (mean {sum(ds.lengths) / len(ds):.0f}, "
        f"max {max(ds.lengths)}, {chars / sum(ds.lengths):.2f} chars/token); {len(packed)} packed rows; "
        f"model hidden {args.hidden} × {args.layers} layers on {args.device}"
    )
    collators = {
        "pad-to-max": GLPFTCollator(tok.pad_token_id, "max_length", args.max_len),
        "dynamic": GLPFTCollator(tok.pad_token_id, "dynamic", args.max_len),
        "packing": GLPFTCollator(tok.pad_token_id, "packed", args.max_len),
    }
    modes = {
        m: (c, batches(m, ds, packed, args.batch_size, args.packed_batch_size, args.seed))
        for m, c in collators.items()
    }
    results = {}
    for mode, (secs, real, total) in run_interleaved(model, modes, args.device).items():
        results[mode] = real / secs
        print(
            f"  {mode:<11} {len(modes[mode][1]):>4} steps  {secs:8.2f} s  {real / secs:10.0f} real tok/s"
            f"  pad {1 - real / total:6.1%}"
        )
    base = results["pad-to-max"]
    print(
        f"speed-up over pad-to-max: dynamic {results['dynamic'] / base:.2f}×, packing {results['packing'] / base:.2f}×"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
