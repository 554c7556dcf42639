"""``alpha-umi train --label_logits_only``: the LM head only at labelled positions vs everywhere.

    python benchmarks/label_logits.py                    # CPU, 32k-token vocabulary, real role samples
    python benchmarks/label_logits.py --vocab 8000 --hidden 512 --steps 20

Role prompts are long and their targets short, so with the loss masked on the prompt almost every
logit the LM head computes is thrown away. This trains the same steps on the same samples (reference
role files, all four roles, tokenised by a tokenizer trained on them; a random Llama whose LM head is
``vocab × hidden``) with the flag on and off, alternating runs (on, off, on, off) so load on a shared
machine hits both, and prints seconds per step of the faster run of each, their ratio and the losses
(which must agree).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_EXAMPLE = REPO.parent / "shared" / "reference" / "alpha_umi" / "train-example"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=2048)
    args = ap.parse_args()
    files = sorted(TRAIN_EXAMPLE.glob("train_*.json"))
    if not files:
        print(f"label_logits: no reference role files under {TRAIN_EXAMPLE}", file=sys.stderr)
        return 2
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from glpft import train
    from glpft.lora import LoraArguments
    from glpft.modeling import load_tokenizer
    from glpft.tiny_model import corpus_texts, make_tiny_model

    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = [r for f in files for r in json.loads(f.read_text())]
        data = tmp / "roles.json"
        data.write_text(json.dumps(rows))
        tiny = make_tiny_model(tmp / "tok", corpus_texts(files, 3_000_000), vocab_size=args.vocab)
        tok = load_tokenizer(tiny)
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(tok), hidden_size=args.hidden, intermediate_size=args.hidden * 3,
            num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )  # fmt: skip
        model_dir = tmp / "model"
        AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
        results: dict[bool, list[float]] = {True: [], False: []}
        losses: dict[bool, list[float]] = {}
        for run, flag in enumerate((True, False, True, False)):
            out = tmp / f"run{run}"
            targs = train.TrainingArguments(
                output_dir=str(out), max_steps=args.steps, learning_rate=1e-4, per_device_train_batch_size=args.batch,
                logging_steps=1, save_strategy="no", report_to="none", seed=0, use_cpu=not torch.cuda.is_available(),
                disable_tqdm=True, label_logits_only=flag, group_by_length=True,
            )  # fmt: skip
            t0 = time.perf_counter()
            train.train(
                train.ModelArguments(model_name_or_path=str(model_dir)),
                train.DataArguments(data_path=str(data), model_max_length=args.max_len),
                LoraArguments(),
                targs,
            )
            state = json.loads((out / "trainer_state.json").read_text())
            seconds = state["log_history"][-1].get("train_runtime", time.perf_counter() - t0)
            results[flag].append(seconds / args.steps)
            losses[flag] = [e["loss"] for e in state["log_history"] if "loss" in e]
    on, off = min(results[True]), min(results[False])
    print(f"\nlabel_logits_only — random Llama {n_params / 1e6:.1f}M params, {len(tok)}-token vocabulary, "
          f"{len(rows)} reference role samples, batch {args.batch}, {args.steps} steps, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"  LM head everywhere        {off:.3f} s/step")
    print(f"  LM head at labels only    {on:.3f} s/step")
    print(f"  speed-up                  {off / on:.2f}x")
    same = all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in zip(losses[True], losses[False]))
    print(f"  losses agree              {same} (first {losses[True][0]:.4f} / {losses[False][0]:.4f}, "
          f"last {losses[True][-1]:.4f} / {losses[False][-1]:.4f})")  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
