"""How well the demo's base model copies values, against its pretraining steps.

    alpha-umi demo --out runs/demo                                # first: a finished default demo run
    python benchmarks/demo_copy.py --run runs/demo                # 3 and 4.3 pretraining epochs (~5 min)
    python benchmarks/demo_copy.py --run runs/demo --epochs 2 3 4 6

Almost every failed real-time query of the demo is a wrong answer: a value (a city, a code, a number)
not copied from the query or an observation. This pretrains the run's random model (``03_tiny_model``)
on the run's pretraining corpus for each number of epochs (the demo's settings otherwise, 2 torch
threads) and measures copying on dialogues of 120 fresh scenarios (none of the corpus's queries): at every position whose true token
is a value (a capitalised word, a code or a number) that already occurred earlier in the sequence,
is the model's greedy next token right? Prints steps, seconds and that share per run, and the ratio
of the shares of the last and the first run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from glpft.tiny_model import PHRASE_ISOLATE

#: a value token: one piece the phrase tokenizer keeps apart (a capitalised word, a code such as P108
#: or EUR, a number), with its leading space if any
VALUE = re.compile(rf"^(Ġ)?({PHRASE_ISOLATE})$")


def copy_share(model_dir: Path, tokenizer, rows: list[dict]) -> tuple[float, int]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    hit = total = 0
    for row in rows:
        ids = tokenizer("system: " + row["target"]).input_ids
        with torch.no_grad():
            pred = model(torch.tensor([ids])).logits[0].argmax(-1).tolist()
        for t in range(1, len(ids)):
            if VALUE.match(tokenizer.convert_ids_to_tokens(ids[t])) and ids[t] in ids[:t]:
                total += 1
                hit += pred[t - 1] == ids[t]
    return hit / max(1, total), total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished demo run folder")
    ap.add_argument("--epochs", type=float, nargs="+", default=[3, 4.3])
    args = ap.parse_args()
    corpus, tiny = args.run / "03_pretrain_corpus.json", args.run / "03_tiny_model"
    if not corpus.exists() or not (tiny / "config.json").exists():
        print(f"demo_copy: {args.run} holds no finished demo run (run `alpha-umi demo --out {args.run}`)",
              file=sys.stderr)  # fmt: skip
        return 2
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from toolbench_multillm import demo

    hf_logging.disable_progress_bar()
    torch.set_num_threads(2)
    saved = json.loads((args.run / "demo_config.json").read_text())
    fields = demo.DemoConfig.__dataclass_fields__
    cfg = replace(demo.DemoConfig(), **{k: v for k, v in saved.items() if k in fields and k != "threads"})
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    # probe dialogues of fresh scenarios: none of the pretraining corpus's queries
    seen = {row["target"].split("</s>")[0].removeprefix("user: ") for row in json.loads(corpus.read_text())}
    rows = demo.pretrain_corpus(120, seed=99, exclude=seen)
    shares = []
    for epochs in args.epochs:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = demo._train(str(tiny), corpus, Path(tmp) / "m", cfg, 0, epochs=epochs, lr=cfg.pretrain_lr)
            seconds = time.perf_counter() - t0
            share, n = copy_share(Path(tmp) / "m", tokenizer, rows)
        shares.append(share)
        print(f"epochs {epochs:g}: {r['steps']} steps, {seconds:.0f}s, values copied right {share:.3f} of {n}",
              flush=True)  # fmt: skip
    if len(shares) > 1 and shares[0] > 0:
        print(f"ratio last/first: {shares[-1] / shares[0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
