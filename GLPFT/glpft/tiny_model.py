"""Build a tiny Llama-architecture model and a BPE tokenizer trained on local text, offline.

The result is an ordinary Hugging Face folder, loaded with ``AutoModelForCausalLM.from_pretrained``
and ``AutoTokenizer.from_pretrained`` exactly like a real checkpoint. Used by the tests and the demo.

    alpha-umi make-tiny-model --out runs/tiny --corpus data.json [--hidden-size 64 --layers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from glpft.formats import FormatError, read_json
from glpft.prompts import TEMPLATES

SPECIAL = {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "pad": "<pad>"}


#: ``phrases`` pre-tokenisation: capitalised words, codes (P108, EUR) and numbers stand alone, so the
#: values an agent copies between query, call, observation and answer are the same tokens everywhere
#: (mostly one token each); everything else may merge across spaces.
PHRASE_ISOLATE = r"[A-Z][a-z]+|[A-Z]+[0-9]+|[A-Z]{2,}|-?[0-9]+(?:\.[0-9]+)?"


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 1000, bos: bool = True, pad: bool = True, phrases: bool = False
):
    """A byte-level BPE fast tokenizer with ``</s>`` as EOS (so ``</s>`` in text encodes to EOS).

    ``bos=False`` / ``pad=False`` build the tokenizer variants some model families ship (no BOS token,
    no pad token), which the training and inference code must handle. ``phrases=True`` lets merges
    cross spaces (repeated boilerplate such as tool documents becomes a few tokens, about 2.5x shorter
    prompts on the demo's data) while :data:`PHRASE_ISOLATE` pieces stay apart.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = (
        [SPECIAL["unk"], SPECIAL["eos"]]
        + ([SPECIAL["bos"]] if bos else [])
        + ([SPECIAL["pad"]] if pad else [])
    )
    tok = Tokenizer(models.BPE(unk_token=SPECIAL["unk"]))
    if phrases:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(PHRASE_ISOLATE), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        **({"max_token_length": 32} if phrases else {}),
    )
    tok.train_from_iterator(list(texts) + list(TEMPLATES.values()), trainer=trainer)
    if bos:
        bos_id = tok.token_to_id(SPECIAL["bos"])
        tok.post_processor = processors.TemplateProcessing(
            single=f"{SPECIAL['bos']} $A",
            pair=f"{SPECIAL['bos']} $A $B",
            special_tokens=[(SPECIAL["bos"], bos_id)],
        )
    kwargs = {"eos_token": SPECIAL["eos"], "unk_token": SPECIAL["unk"]}
    if bos:
        kwargs["bos_token"] = SPECIAL["bos"]
    if pad:
        kwargs["pad_token"] = SPECIAL["pad"]
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    fast.add_bos_token = bos
    return fast


def make_tiny_model(
    out_dir: str | os.PathLike,
    texts: Iterable[str],
    vocab_size: int = 1000,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 4096,
    bos: bool = True,
    pad: bool = True,
    seed: int = 0,
    phrases: bool = False,
    intermediate_size: int | None = None,
    tie_embeddings: bool = False,
) -> Path:
    """Write tokenizer + randomly initialised ``LlamaForCausalLM`` to ``out_dir`` and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, bos=bos, pad=pad, phrases=phrases)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tie_embeddings,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def corpus_texts(paths: Iterable[str | os.PathLike], limit_chars: int = 2_000_000) -> list[str]:
    """Strings from JSON files (every string value, recursively) to train the tokenizer on.

    A file that is not JSON raises a one-line FormatError naming it.
    """
    texts: list[str] = []
    total = 0

    def walk(x):
        nonlocal total
        if isinstance(x, str):
            texts.append(x)
            total += len(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for p in paths:
        walk(read_json(p))
        if total > limit_chars:
            break
    return texts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="alpha-umi make-tiny-model", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output model folder")
    ap.add_argument("--corpus", nargs="*", default=[], help="JSON files whose strings train the tokenizer")
    ap.add_argument("--vocab-size", type=int, default=1000)
    ap.add_argument("--hidden-size", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--max-positions", type=int, default=4096)
    ap.add_argument("--no-bos", action="store_true", help="build a tokenizer without a BOS token")
    ap.add_argument("--no-pad", action="store_true", help="build a tokenizer without a pad token")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise FormatError(f"--out {args.out} is a file, not a folder")
        for p in args.corpus:
            if not os.path.isfile(p):
                raise FormatError(f"--corpus: no such file: {p}")
        texts = corpus_texts(args.corpus) or [
            "Action: Action Input: conclusion: Next: caller. observation: user: "
        ]
        out = make_tiny_model(
            args.out,
            texts,
            args.vocab_size,
            args.hidden_size,
            args.layers,
            args.heads,
            args.max_positions,
            bos=not args.no_bos,
            pad=not args.no_pad,
            seed=args.seed,
        )
    except (FormatError, OSError) as e:  # OSError: --out under a file, a read-only folder …
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"tiny model written to {out}")
    return 0
