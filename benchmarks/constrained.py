"""Constrained decoding: static metrics with vs without grammars, and the decoding cost per token.

    python benchmarks/constrained.py                              # a random ~12M Llama on out-of-domain steps
    python benchmarks/constrained.py --models runs/demo            # the demo's trained roles on its held-out steps
    python benchmarks/constrained.py --device cuda --hidden 2048 --layers 22

Runs ``alpha-umi infer`` twice on the same steps, ``--constrained_decoding off`` and ``all`` (greedy),
and prints Plan ACC, Act. EM, Hallu., Arg. F1, the share of call steps whose action input is a JSON
object, and how many outputs the grammar changed. Then times generation of the same caller prompts
with and without the caller grammar and prints seconds per generated token and their ratio.
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
DEFAULT_TEST = REPO.parent / "shared" / "reference" / "alpha_umi" / "test" / "out_of_domain.json"


def random_model(args, folder: Path) -> Path:
    """A random Llama with a tokenizer trained on the test file, saved as a model folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from glpft.modeling import load_tokenizer
    from glpft.tiny_model import corpus_texts, make_tiny_model

    tiny = make_tiny_model(folder, corpus_texts([args.test_file], args.corpus_chars), vocab_size=args.vocab)
    tok = load_tokenizer(tiny)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=args.hidden, intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
        num_key_value_heads=max(1, args.hidden // 256), max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tiny)
    return tiny


def json_inputs(path: Path) -> float | None:
    """Share of caller outputs with an ``Action Input:`` that is a JSON object (a missing one is not)."""
    rows = [r for r in json.loads(path.read_text()) if "model_input_for_caller" in r]
    ok = 0
    for r in rows:
        call = r["predictions"].split("</s>caller: ", 1)[-1]
        if "\nAction Input:" not in call:
            continue
        try:
            ok += isinstance(json.loads(call.split("\nAction Input:", 1)[1].split("</s>")[0]), dict)
        except ValueError:
            pass
    return ok / len(rows) if rows else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-file", default=str(DEFAULT_TEST))
    ap.add_argument("--models", help="a demo run folder (05_stage2_<role>/ and its held-out test file)")
    ap.add_argument("--trajectories", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument(
        "--vocab", type=int, default=32000, help="BPE merges (as Llama's 32k: masking cost grows with it)"
    )
    ap.add_argument("--corpus-chars", type=int, default=3_000_000, help="tokenizer training text")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)

    from glpft import infer
    from glpft.metrics import compute_metrics, read_predictions

    work = Path(tempfile.mkdtemp(prefix="constrained_"))
    if args.models:
        run = Path(args.models)
        roles = {r: run / f"05_stage2_{r}" for r in ("planner", "caller", "summarizer")}
        test = run / "02_prepro" / "test" / "raw_data" / "raw_data_stage_2.json"
        max_input = 1280
    else:
        if not Path(args.test_file).is_file():
            print(f"test file not found: {args.test_file}", file=sys.stderr)
            return 2
        model = random_model(args, work / "model")
        roles = dict.fromkeys(("planner", "caller", "summarizer"), model)
        test, max_input = Path(args.test_file), 3750
    flags = [f"--{r}_model_name_or_path={p}" for r, p in roles.items()]
    flags += [f"--data_path={test}", f"--num_infer_samples={args.trajectories}", f"--max_input_length={max_input}",
              f"--max_new_tokens={args.max_new_tokens}", "--per_device_eval_batch_size=8"]  # fmt: skip
    if args.models:
        flags.append("--prompt_prefix")
    scores, seconds = {}, {}
    for mode in ("off", "all"):
        start = time.perf_counter()
        assert infer.main(flags + [f"--output_dir={work / mode}", f"--constrained_decoding={mode}"]) == 0
        seconds[mode] = time.perf_counter() - start
        m = compute_metrics(read_predictions(work / mode / "predictions.json"))
        m["json_inputs"] = json_inputs(work / mode / "predictions.json")
        scores[mode] = m

    # cost per generated token: the same caller prompts, with and without the caller grammar
    from glpft import constraints as C
    from glpft.generation import DecodingConfig, GenerationStats, generate
    from glpft.modeling import load_model_and_tokenizer, stop_token_ids
    from glpft.steps import build_steps, read_test_records, route

    model, tok = load_model_and_tokenizer(roles["caller"], device=args.device)
    steps = [
        s
        for s in build_steps(read_test_records(str(test), args.trajectories))
        if "Next: caller" in s.reference
    ]
    for s in steps:
        route(s, s.reference.split("</s>")[0].removeprefix("assistant: "))
    prefix = "system: " if args.models else ""
    ids = [tok(prefix + s.next_prompt.text).input_ids[-max_input:] for s in steps]
    stop = stop_token_ids(tok, model)
    con = C.Constrainer(tok, stop, vocab_size=model.get_output_embeddings().weight.shape[0])
    grammars = [C.role_grammar("caller", "caller", s.tools) for s in steps]
    config = DecodingConfig(max_new_tokens=args.max_new_tokens)
    for g in set(grammars):
        con.compile(g)  # compiled once per tool set (cached): not a per-token cost
    spent = [0.0]

    def timed(fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[0] += time.perf_counter() - t

        return wrapper

    con.mask = timed(con.mask)  # the grammar's work inside each decoding step: masking and accepting
    accept = C.RowState.accept
    C.RowState.accept = timed(accept)
    stats = GenerationStats()
    start = time.perf_counter()
    generate(
        model,
        ids,
        stop_ids=stop,
        config=config,
        batch_size=8,
        stats=stats,
        grammars=grammars,
        constrainer=con,
    )
    total = time.perf_counter() - start
    C.RowState.accept = accept
    free_stats = GenerationStats()
    start = time.perf_counter()
    generate(model, ids, stop_ids=stop, config=config, batch_size=8, stats=free_stats)
    free_total = time.perf_counter() - start

    params = sum(p.numel() for p in model.parameters())
    source = (
        f"demo roles from {args.models}"
        if args.models
        else f"random Llama {params / 1e6:.1f}M params, {len(tok)}-token vocabulary"
    )
    print(
        f"\nconstrained decoding — {args.device}, {source}, {args.trajectories} trajectories of {test.name}"
    )
    print(f"{'metric':<26} {'off':>8} {'all':>8}")
    for key, label in (("plan_em", "Plan ACC"), ("action_em", "Act. EM"), ("hallu_rate", "Hallu."),
                       ("f1", "Arg. F1"), ("json_inputs", "JSON action inputs")):  # fmt: skip
        row = [scores[m][key] for m in ("off", "all")]
        print(f"{label:<26} " + " ".join(f"{v:8.3f}" if v is not None else f"{'-':>8}" for v in row))
    print(f"{'infer wall time (s)':<26} {seconds['off']:8.1f} {seconds['all']:8.1f}")
    n = stats.new_tokens
    print(f"caller decoding under the grammar: {total / n * 1e3:.2f} ms per generated token ({n} tokens), of "
          f"which masking + accepting {spent[0] / n * 1e3:.2f} ms: {total / (total - spent[0]):.3f}x the "
          "same steps without it")  # fmt: skip
    print(
        f"(unconstrained run of the same prompts: {free_total / free_stats.new_tokens * 1e3:.2f} ms per token, "
        f"{free_stats.new_tokens} tokens; the outputs differ, so per-token times of the two runs do not compare)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
