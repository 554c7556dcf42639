"""Load a role model and its tokenizer from a local folder, optionally through a LoRA adapter.

A model folder holds ``config.json`` + weights + tokenizer files (what ``save_pretrained`` writes).
An adapter folder holds ``adapter_config.json``; its ``base_model_name_or_path`` must be a local model
folder. Adapters are merged into the weights at load time (inference only, and faster than peft's
wrapper). Every failure is a one-line ``ModelFolderError`` naming the folder and what is missing.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from glpft.formats import FormatError

log = logging.getLogger(__name__)

#: Files any one of which makes a folder loadable by ``AutoTokenizer``.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")


class ModelFolderError(FormatError):
    """A model or adapter folder that cannot be loaded; the message names the folder and the file."""


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def resolve_model_folder(path: str | os.PathLike, use_lora: bool = False) -> tuple[Path, Path | None, Path]:
    """(base model folder, adapter folder or None, tokenizer folder) of ``path``, checked on disk.

    An adapter folder is recognised by its ``adapter_config.json`` even when ``use_lora`` is False.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder")
    adapter_cfg = folder / "adapter_config.json"
    if use_lora or (adapter_cfg.is_file() and not (folder / "config.json").is_file()):
        if not adapter_cfg.is_file():
            raise ModelFolderError(f"{folder}: --*_use_lora is set but the folder has no adapter_config.json")
        try:
            base = json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
        except (KeyError, ValueError):
            raise ModelFolderError(f"{adapter_cfg}: missing field 'base_model_name_or_path'") from None
        base_dir = Path(base) if base else Path("")
        if not base or not (base_dir / "config.json").is_file():
            raise ModelFolderError(
                f"{adapter_cfg}: base_model_name_or_path {base!r} is not a local model folder with config.json"
            )
        tok_dir = folder if _has_tokenizer(folder) else base_dir
        if not _has_tokenizer(tok_dir):
            raise ModelFolderError(f"{folder}: no tokenizer files here nor in base model {base_dir}")
        return base_dir, folder, tok_dir
    if not (folder / "config.json").is_file():
        raise ModelFolderError(f"{folder}: not a model folder (no config.json)")
    if not _has_tokenizer(folder):
        raise ModelFolderError(f"{folder}: model folder has no tokenizer ({' / '.join(TOKENIZER_FILES)})")
    return folder, None, folder


def load_tokenizer(path: str | os.PathLike, use_lora: bool = False):
    """The tokenizer of a model or adapter folder, left-padding, with a pad token."""
    from transformers import AutoTokenizer

    from glpft.data import DataError, ensure_pad_token

    _, _, tok_dir = resolve_model_folder(path, use_lora)
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    tokenizer.padding_side = "left"
    # fixes: the original added a new <pad> token and resized the embeddings (a changed vocabulary);
    # pads are masked by length here, so reusing unk/eos (as in training) is safe.
    try:
        note = ensure_pad_token(tokenizer)
    except DataError as e:
        raise ModelFolderError(f"{path}: {e}") from None
    if note:
        log.info(note)
    return tokenizer


def load_model_and_tokenizer(
    path: str | os.PathLike,
    use_lora: bool = False,
    dtype=None,
    device=None,
    attn_implementation: str | None = None,
):
    """(model in eval mode on ``device``, tokenizer) of a local model or adapter folder."""
    import torch
    from transformers import AutoModelForCausalLM

    base_dir, adapter_dir, _ = resolve_model_folder(path, use_lora)
    tokenizer = load_tokenizer(path, use_lora)
    kwargs = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), **kwargs)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
        log.info("merged LoRA adapter %s into %s", adapter_dir, base_dir)
    model.eval()
    if device is not None:
        model.to(torch.device(device))
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """Ids that end a generation: the tokenizer's EOS, the id of ``</s>`` if it is one token, and the
    model's configured EOS ids."""
    from glpft.prompts import EOS_TEXT

    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    tok_id = tokenizer.convert_tokens_to_ids(EOS_TEXT)
    if isinstance(tok_id, int) and tok_id != tokenizer.unk_token_id:
        ids.add(tok_id)
    if model is not None:
        eos = getattr(model.generation_config, "eos_token_id", None)
        for e in eos if isinstance(eos, list) else [eos]:
            if e is not None:
                ids.add(int(e))
    return sorted(ids)
