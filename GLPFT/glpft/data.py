"""GLPFT training data: role-sample reading, tokenisation with loss masking, batching and packing.

Input records are the role samples of DESIGN §3.4 (``{"tools", "history", "input", "target"}``) in
JSON lists or JSONL files. Each becomes ``"system: " + input`` (with the tokenizer's BOS, if any) followed
by ``target + EOS``; the loss is computed on the target tokens only and over-long samples keep their
*last* ``model_max_length`` tokens (DESIGN §3.5).

Three batching modes share one collator:

- ``dynamic`` (default): pad to the longest sample of the batch; batches are length-grouped.
- ``packed``: several samples per row, position ids restarting at 0 per sample. Transformers turns
  restarting position ids into a block-diagonal causal mask (sdpa/eager/flex: exact, no attention
  across samples); with flash-attention the batch is flattened into one padding-free varlen row.
- ``max_length``: every row padded to ``model_max_length`` — the original recipe, for comparison.
"""

from __future__ import annotations

import bisect
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from glpft.formats import FormatError, RoleSample, loads_json, read_json
from glpft.prompts import TRAIN_PREFIX

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
DATA_SUFFIXES = (".json", ".jsonl")


class DataError(FormatError):
    """A training data path, file or record that cannot be used (the project's bad-input error)."""


# --- reading -------------------------------------------------------------------------------------


def expand_data_paths(data_path: str) -> list[Path]:
    """Files named by a comma-separated ``--data_path``: files as given, folders searched recursively
    (sorted) for ``*.json`` / ``*.jsonl``. fixes: the original crashed on a folder."""
    files: list[Path] = []
    for part in (p.strip() for p in data_path.split(",")):
        if not part:
            continue
        path = Path(part)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)
            if not found:
                raise DataError(f"--data_path: folder {path} holds no .json or .jsonl files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"--data_path: no such file or folder: {path}")
    if not files:
        raise DataError("--data_path is empty")
    return files


def _check_record(rec: Any, where: str) -> RoleSample:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: a role sample must be a JSON object, got {type(rec).__name__}")
    for key in ("input", "target"):
        value = rec.get(key)
        if not isinstance(value, str):
            raise DataError(f"{where}: field {key!r} is missing or not a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            # fixes: JSON allows an escaped lone surrogate ("\\ud800"); the tokenizer then failed mid-run
            # with a TypeError naming neither file nor record
            raise DataError(
                f"{where}: field {key!r} is not valid text (lone surrogate {value[e.start]!r} at character {e.start})"
            ) from None
    return rec  # type: ignore[return-value]


def read_role_file(path: str | os.PathLike) -> list[RoleSample]:
    """Role samples of one ``.json`` (a list) or ``.jsonl`` (one object a line) file, validated."""
    path = Path(path)
    try:
        if path.suffix == ".jsonl":
            with open(path, "rb") as f:
                lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
            rows = [(f"{path}:{n}", loads_json(line, f"{path}:{n}")) for n, line in lines]
        else:
            rows = [(f"{path}[{i}]", rec) for i, rec in enumerate(read_json(path, expect=list))]
    except FormatError as e:
        raise DataError(str(e), e.reason) from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    return [_check_record(rec, where) for where, rec in rows]


def load_role_data(
    data_path: str,
    max_num_sample_per_data: int = 0,
    max_num_sample_ratio: float = 0.0,
    eval_ratio: float = 0.02,
    seed: int = 42,
) -> tuple[list[RoleSample], list[RoleSample]]:
    """(train, eval) samples from every file of ``data_path``.

    paper parity: each file is shuffled, capped (``max_num_sample_per_data`` samples, else
    ``max_num_sample_ratio`` of the file) and split ``1 - eval_ratio`` / ``eval_ratio``; the shuffle
    is seeded here so that runs are repeatable.
    """
    train: list[RoleSample] = []
    dev: list[RoleSample] = []
    rng = random.Random(seed)
    for path in expand_data_paths(data_path):
        rows = read_role_file(path)
        rng.shuffle(rows)
        if max_num_sample_per_data > 0:
            rows = rows[:max_num_sample_per_data]
        elif max_num_sample_ratio > 0:
            rows = rows[: int(len(rows) * max_num_sample_ratio)]
        split = int(len(rows) * (1 - eval_ratio)) if eval_ratio > 0 else len(rows)
        train += rows[:split]
        dev += rows[split:]
        log.info("loaded %d samples from %s", len(rows), path)
    return train, dev


# --- tokenisation --------------------------------------------------------------------------------


def ensure_pad_token(tokenizer) -> str | None:
    """Give a tokenizer without a pad token one (unk, else eos) and return a note saying so.

    Pad positions are always masked out of attention and loss (by length, never by token id), so
    reusing unk or eos as pad is safe. fixes: the original forced ``pad = unk`` on every tokenizer.
    """
    if tokenizer.pad_token_id is not None:
        return None
    for name in ("unk_token", "eos_token"):
        token = getattr(tokenizer, name)
        if token is not None:
            tokenizer.pad_token = token
            return f"tokenizer has no pad token; using its {name} {token!r} for padding (masked out)"
    raise DataError("tokenizer has neither a pad, an unk nor an eos token; cannot pad batches")


def special_prefix_ids(tokenizer) -> list[int]:
    """Ids the tokenizer puts *before* text when adding special tokens (its BOS, or nothing).

    Found by probing, so tokenizers without BOS (or that add specials after the text) are handled.
    fixes: the original stripped the target's first token with ``[1:]``, assuming a LLaMA BOS.
    """
    probe = "a b"
    plain = tokenizer(probe, add_special_tokens=False, verbose=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start])
    return []


def encode_sample(
    input_ids: Sequence[int], target_ids: Sequence[int], max_len: int
) -> tuple[list[int], list[int]]:
    """Concatenate prompt and target ids, mask the prompt in the labels, keep the last ``max_len``."""
    ids = list(input_ids) + list(target_ids)
    labels = [IGNORE_INDEX] * len(input_ids) + list(target_ids)
    if len(ids) > max_len:
        ids, labels = ids[-max_len:], labels[-max_len:]
    return ids, labels


class SampleEncoder:
    """Tokenises role samples per DESIGN §3.5: ``[BOS] + "system: " + input`` then ``target + [EOS]``."""

    def __init__(self, tokenizer, max_len: int):
        if tokenizer.eos_token_id is None:
            raise DataError("tokenizer has no eos token; GLPFT targets end with EOS")
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.prefix = special_prefix_ids(tokenizer)
        self.eos = tokenizer.eos_token_id

    def encode_many(self, samples: Sequence[RoleSample]) -> list[tuple[list[int], list[int]]]:
        tok = self.tokenizer
        sources = tok([TRAIN_PREFIX + s["input"] for s in samples], add_special_tokens=False, verbose=False)[
            "input_ids"
        ]
        targets = tok([s["target"] for s in samples], add_special_tokens=False, verbose=False)["input_ids"]
        return [
            encode_sample(self.prefix + src, tgt + [self.eos], self.max_len)
            for src, tgt in zip(sources, targets)
        ]

    def encode(self, sample: RoleSample) -> tuple[list[int], list[int]]:
        return self.encode_many([sample])[0]


class RoleDataset(Dataset):
    """Tokenised role samples; items are ``{"input_ids", "labels"}`` int arrays.

    Stored compactly (int32 ids + the number of masked prompt tokens, which truncation keeps a
    prefix) because every rank holds the whole set. ``lazy=True`` tokenises on each access instead
    (the paper's ``--lazy_preprocess``); ``lengths`` is then a character-based estimate, enough for
    length grouping but not for packing.
    """

    def __init__(self, samples: Sequence[RoleSample], encoder: SampleEncoder, lazy: bool = False, chunk=512):
        self.samples = samples
        self.encoder = encoder
        self.lazy = lazy
        self.items: list[tuple[np.ndarray, int]] = []
        if lazy:
            probe = list(range(0, len(samples), max(1, len(samples) // 32)))
            chars = sum(len(samples[i]["input"]) + len(samples[i]["target"]) for i in probe)
            toks = sum(len(self[i]["input_ids"]) for i in probe)
            per_tok = chars / max(1, toks)
            self.lengths = [
                min(encoder.max_len, int((len(s["input"]) + len(s["target"])) / per_tok) + 1) for s in samples
            ]
        else:
            for start in range(0, len(samples), chunk):
                self.items += [self._compact(*x) for x in encoder.encode_many(samples[start : start + chunk])]
            self.lengths = [len(ids) for ids, _ in self.items]

    @staticmethod
    def _compact(ids: list[int], labels: list[int]) -> tuple[np.ndarray, int]:
        masked = next((k for k, x in enumerate(labels) if x != IGNORE_INDEX), len(labels))
        return np.asarray(ids, dtype=np.int32), masked

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        ids, masked = self._compact(*self.encoder.encode(self.samples[i])) if self.lazy else self.items[i]
        labels = ids.astype(np.int64)
        labels[:masked] = IGNORE_INDEX
        return {"input_ids": ids, "labels": labels}


# --- packing -------------------------------------------------------------------------------------


def pack_lengths(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """Group sample indices into rows of at most ``max_len`` tokens (best-fit decreasing).

    Deterministic; each row's indices are in decreasing length order. O(n log n) plus list inserts.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, row id)
    for i in order:
        need = lengths[i]
        pos = bisect.bisect_left(free, (need, -1))
        if pos < len(free):
            room, row = free.pop(pos)
            rows[row].append(i)
            room -= need
        else:
            row, room = len(rows), max_len - need
            rows.append([i])
        if room > 0:
            bisect.insort(free, (room, row))
    return rows


class PackedDataset(Dataset):
    """Rows of several samples; items are lists of ``{"input_ids", "labels"}`` dicts."""

    def __init__(self, base: RoleDataset, max_len: int):
        if base.lazy:
            raise DataError("packing needs exact lengths: do not combine --packing with --lazy_preprocess")
        self.base = base
        self.rows = pack_lengths(base.lengths, max_len)
        self.lengths = [sum(base.lengths[i] for i in row) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> list[dict[str, list[int]]]:
        return [self.base[j] for j in self.rows[i]]


# --- batching ------------------------------------------------------------------------------------


@dataclass
class GLPFTCollator:
    """Builds tensors for one batch in ``dynamic``, ``max_length`` or ``packed`` mode (module docstring).

    ``flatten=True`` (packed mode with flash-attention) concatenates the whole batch into one row
    without padding; flash-attention then runs varlen over the restarting position ids. Packed
    batches carry no attention_mask: transformers derives the block-diagonal mask from the position
    ids, which it does only when the model runs without a KV cache (``config.use_cache = False``).
    """

    pad_token_id: int
    mode: str = "dynamic"
    max_len: int = 4096
    pad_to_multiple_of: int | None = None
    flatten: bool = False

    def _width(self, longest: int) -> int:
        if self.mode == "max_length":
            return max(self.max_len, longest)
        m = self.pad_to_multiple_of
        return -(-longest // m) * m if m else longest

    def __call__(self, batch: list) -> dict[str, torch.Tensor]:
        if self.mode == "packed":
            return self._packed(batch)
        width = self._width(max(len(x["input_ids"]) for x in batch))
        ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, x in enumerate(batch):
            n = len(x["input_ids"])
            ids[r, :n] = torch.as_tensor(np.asarray(x["input_ids"], dtype=np.int64))
            labels[r, :n] = torch.as_tensor(np.asarray(x["labels"], dtype=np.int64))
            mask[r, :n] = 1
        if self.mode == "dynamic":
            # Right padding under a causal mask: real tokens never see the pads after them and the
            # pads carry no loss, so no attention_mask is needed and attention runs its plain causal
            # kernel (a padding mask forces the slower masked path). Logits of real tokens are the same.
            return {"input_ids": ids, "labels": labels}
        # the original recipe (pad to model_max_length) kept as it was: with its padding mask
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    def _packed(self, batch: list[list[dict]]) -> dict[str, torch.Tensor]:
        rows = []
        for row in batch:
            ids = np.concatenate([np.asarray(x["input_ids"], dtype=np.int64) for x in row])
            # a sample's first token is never predicted; masking it also stops the previous
            # sample's last position from being trained to predict it
            labels = np.concatenate(
                [np.r_[IGNORE_INDEX, np.asarray(x["labels"], dtype=np.int64)[1:]] for x in row]
            )
            pos = np.concatenate([np.arange(len(x["input_ids"])) for x in row])
            rows.append((ids, labels, pos))
        if self.flatten:
            rows = [tuple(np.concatenate([r[k] for r in rows]) for k in range(3))]
        width = self._width(max(len(r[0]) for r in rows))
        ids_t = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels_t = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        # the pad tail restarts its positions too, so it forms its own segment and is never attended to
        pos_t = torch.arange(width).repeat(len(rows), 1)
        for r, (ids, labels, pos) in enumerate(rows):
            n = len(ids)
            ids_t[r, :n] = torch.as_tensor(ids)
            labels_t[r, :n] = torch.as_tensor(labels)
            pos_t[r, :n] = torch.as_tensor(pos)
            pos_t[r, n:] = torch.arange(width - n)
        return {"input_ids": ids_t, "labels": labels_t, "position_ids": pos_t}
