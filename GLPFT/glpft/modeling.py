"""Load a role model and its tokenizer from a local folder, optionally through a LoRA adapter.

A model folder holds ``config.json`` + weights + tokenizer files (what ``save_pretrained`` writes).
An adapter folder holds ``adapter_config.json``; its ``base_model_name_or_path`` must be a local model
folder. Adapters are merged into the weights at load time (inference only, and faster than peft's
wrapper). Every failure is a one-line ``ModelFolderError`` naming the folder and what is missing, or
the file that is not what it claims to be: JSON files are parsed and weight files' headers and sizes
checked (:func:`check_model_files`) before anything is loaded.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

from glpft.formats import FormatError, loads_json, read_json

log = logging.getLogger(__name__)

#: Files any one of which makes a folder loadable by ``AutoTokenizer``.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")
#: JSON files that ``from_pretrained`` reads when they are present (checked to parse).
JSON_FILES = (
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
#: Weight files of a full model or a peft adapter (safetensors, sharded safetensors, torch pickles).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)


class ModelFolderError(FormatError):
    """A model or adapter folder that cannot be loaded; the message names the folder and the file."""


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def read_json_file(path: str | os.PathLike) -> dict:
    """A JSON object file of a model folder, or a one-line ModelFolderError naming it."""
    try:
        return read_json(path, expect=dict)
    except FormatError as e:
        raise ModelFolderError(str(e), e.reason) from None


def check_safetensors(path: str | os.PathLike) -> None:
    """Header and size of a ``.safetensors`` file (a truncated or corrupt file fails here, not in torch).

    Format: 8-byte little-endian header length, a JSON header of ``{name: {"data_offsets": [a, b]}}``,
    then exactly the data the offsets cover.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= n <= min(size - 8, 100_000_000):  # safetensors' own header limit
            raise ModelFolderError(f"{path}: not a valid safetensors file (truncated or corrupt header)")
        try:
            header = loads_json(f.read(n), str(path))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        except (FormatError, AttributeError, KeyError, IndexError, TypeError, ValueError):
            raise ModelFolderError(f"{path}: not a valid safetensors file (corrupt header)") from None
    expected = 8 + n + max(ends, default=0)
    if size != expected:
        raise ModelFolderError(
            f"{path}: truncated or corrupt safetensors file ({size} bytes, its header says {expected})"
        )


def _check_weight_file(path: Path) -> None:
    if path.suffix == ".safetensors":
        check_safetensors(path)
    elif path.suffix == ".bin":
        with open(path, "rb") as f:
            legacy = f.read(1) == b"\x80"  # torch's pre-1.6 pickle format
        if not legacy and not zipfile.is_zipfile(path):
            raise ModelFolderError(f"{path}: truncated or corrupt weights file (not a torch zip archive)")


def check_model_files(folder: str | os.PathLike) -> None:
    """One-line ModelFolderErrors for a model or adapter folder whose files are damaged: JSON files that
    do not parse and weights (single files or the shards an index names) that are missing or truncated.

    Reads JSON files and weight headers only, so it is cheap even for a 7B checkpoint.
    """
    folder = Path(folder)
    for name in JSON_FILES:
        if (folder / name).is_file():
            read_json_file(folder / name)
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            index = read_json_file(path)
            weight_map = index.get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ModelFolderError(f"{path}: field 'weight_map' is missing or empty")
            for shard in sorted(set(map(str, weight_map.values()))):
                if not (folder / shard).is_file():
                    raise ModelFolderError(f"{path}: shard {shard} is missing from {folder}")
                _check_weight_file(folder / shard)
        else:
            _check_weight_file(path)


def has_weights(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a weights file (or index) of a full model or an adapter."""
    return any((Path(folder) / name).is_file() for name in WEIGHT_FILES)


def _load_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError)
    try:
        from safetensors import SafetensorError

        errors += (SafetensorError,)
    except ImportError:
        pass
    return errors


#: What ``from_pretrained`` raises for a damaged or mismatched folder (kept to one line by the loaders).
LOAD_ERRORS = _load_errors()


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line (library errors can run to pages)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


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
        base = adapter_base(folder)
        base_dir = Path(base)
        if not (base_dir / "config.json").is_file():
            raise ModelFolderError(
                f"{adapter_cfg}: base_model_name_or_path {base!r} is not a local model folder with config.json"
            )
        tok_dir = folder if _has_tokenizer(folder) else base_dir
        if not _has_tokenizer(tok_dir):
            raise ModelFolderError(f"{folder}: no tokenizer files here nor in base model {base_dir}")
        check_model_files(folder)
        check_model_files(base_dir)
        return base_dir, folder, tok_dir
    if not (folder / "config.json").is_file():
        raise ModelFolderError(f"{folder}: not a model folder (no config.json)")
    if not _has_tokenizer(folder):
        raise ModelFolderError(f"{folder}: model folder has no tokenizer ({' / '.join(TOKENIZER_FILES)})")
    check_model_files(folder)
    return folder, None, folder


def adapter_base(adapter_dir: str | os.PathLike) -> str:
    """``base_model_name_or_path`` of an adapter folder's ``adapter_config.json`` (one-line errors)."""
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    base = read_json_file(cfg_path).get("base_model_name_or_path")
    if not base or not isinstance(base, str):
        raise ModelFolderError(f"{cfg_path}: missing field 'base_model_name_or_path'")
    return base


def load_tokenizer(path: str | os.PathLike, use_lora: bool = False):
    """The tokenizer of a model or adapter folder, left-padding, with a pad token."""
    from transformers import AutoTokenizer

    from glpft.data import DataError, ensure_pad_token

    _, _, tok_dir = resolve_model_folder(path, use_lora)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    except LOAD_ERRORS as e:
        raise ModelFolderError(f"{tok_dir}: cannot load the tokenizer ({first_line(e)})") from None
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
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base_dir), **kwargs)
    except LOAD_ERRORS as e:
        raise ModelFolderError(f"{base_dir}: cannot load the model ({first_line(e)})") from None
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
        except LOAD_ERRORS as e:
            raise ModelFolderError(f"{adapter_dir}: cannot load the adapter ({first_line(e)})") from None
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
