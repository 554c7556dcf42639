"""Structured decoding for the α-UMi roles: grammars as text a serving stack accepts, the constraint
state of a batched decoding loop, and the request fields of OpenAI-compatible servers (DESIGN §6).

Off by default (paper parity). The grammars are xgrammar EBNF — the syntax vLLM's and SGLang's
default (xgrammar) grammar backends parse — built with xgrammar's public API:

- :func:`caller_grammar` — ``Action: <one offered tool>\\nAction Input: <JSON object of its parameters>``;
- :func:`planner_grammar` — a thought ending in `` Next: caller.`` / `` Next: conclusion.`` / `` Next: give up.``.

A local decoding loop (one :class:`Constrainer` per model; grammars compile once per tool set)::

    con = Constrainer(tokenizer, stop_ids, vocab_size=logits.shape[-1])
    rows = [con.row(caller_grammar(tools)) for tools in batch_tools]   # None: unconstrained row
    while ...:
        con.mask(logits, rows)                    # one bitmask, one apply for the whole batch
        tok = pick(logits)
        for row, t in zip(rows, tok.tolist()):
            if row is not None:
                row.accept(t)                     # False: t was not allowed (mask not applied?)

A remote server gets the same text: ``payload.update(request_params(caller_grammar(tools), "vllm"))``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from glpft.prompts import NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP, caller_turn

#: Parameter types of α-UMi tool entries that constrain a value; any other type allows any JSON value.
JSON_TYPES = ("string", "integer", "number", "boolean", "object", "array")


def _ebnf_literal(text: str) -> str:
    """``text`` as an EBNF string literal: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value_schema(spec: Any, integer_as_number: bool) -> dict[str, Any]:
    """JSON schema of one entry input (``"<type>, <description>"``): the text before the first comma."""
    kind = spec.split(",", 1)[0].strip().lower() if isinstance(spec, str) else ""
    if kind == "integer" and integer_as_number:
        kind = "number"
    return {"type": kind} if kind in JSON_TYPES else {}


def _arguments(
    tool: Mapping[str, Any],
    required: Sequence[str],
    max_whitespace: int | None,
    any_order: bool,
    integer_as_number: bool,
):
    import xgrammar as xgr

    inputs = tool.get("input") or {}
    if not isinstance(inputs, Mapping):
        raise ValueError(f"caller grammar: tool {tool['Name']!r} has a non-object 'input'")
    unknown = [key for key in required if key not in inputs]
    if unknown:
        raise ValueError(f"caller grammar: required {unknown} are not inputs of tool {tool['Name']!r}")
    if not inputs:
        return xgr.Grammar.from_ebnf('root ::= "{}"')
    schema = {
        "type": "object",
        "properties": {key: _value_schema(spec, integer_as_number) for key, spec in inputs.items()},
        "required": list(dict.fromkeys(required)),
        "additionalProperties": False,
    }
    # ``any_order`` is passed only when asked for: older xgrammar releases (pinned by some vLLM
    # versions) lack the argument and still build the default grammar
    order = {"any_order": True} if any_order else {}
    try:
        return xgr.Grammar.from_json_schema(
            json.dumps(schema),
            any_whitespace=True,
            max_whitespace_cnt=max_whitespace,
            strict_mode=True,
            **order,
        )
    except TypeError as e:
        raise ValueError(f"caller grammar: this xgrammar does not support any_order ({e})") from None


def caller_grammar(
    tools: Sequence[Mapping[str, Any]],
    required: Mapping[str, Sequence[str]] | None = None,
    *,
    max_whitespace: int | None = 8,
    any_order: bool = False,
    integer_as_number: bool = False,
) -> str:
    """EBNF of one caller output: ``Action: <Name>\\nAction Input: <arguments>`` and nothing after it.

    ``tools`` are α-UMi prompt entries (:func:`glpft.prompts.tool_entry`); the first entry of a
    repeated ``Name`` wins (as ``Toolset.by_name``). The arguments are a JSON object over that tool's
    ``input`` keys with values of their declared types (:data:`JSON_TYPES`; any other type → any JSON
    value); a tool without inputs takes exactly ``{}``. Every key is optional unless listed in
    ``required[name]`` and appears at most once, **in the entry's order**: xgrammar's any-order
    object (``any_order=True``) does not exclude repeated keys. Whitespace between JSON tokens is
    free (compact and ``json.dumps(indent=2)`` layouts both fit), at most ``max_whitespace``
    characters per gap. ``integer_as_number`` lets ``integer`` inputs take any number (ToolBench
    maps its ``NUMBER`` type to ``integer``, and real calls pass coordinates such as ``-122.4194``).
    """
    import xgrammar as xgr

    required = required or {}
    seen: dict[str, Mapping[str, Any]] = {}
    for tool in tools:
        name = tool.get("Name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"caller grammar: tool entry without a 'Name': {str(tool)[:80]}")
        seen.setdefault(name, tool)
    if not seen:
        raise ValueError("caller grammar: no tools offered")
    stray = sorted(set(required) - set(seen))
    if stray:
        raise ValueError(f"caller grammar: required names tools that are not offered: {stray}")
    branches = [
        xgr.Grammar.concat(
            xgr.Grammar.from_ebnf("root ::= " + _ebnf_literal(caller_turn(name, ""))),
            _arguments(tool, required.get(name, ()), max_whitespace, any_order, integer_as_number),
        )
        for name, tool in seen.items()
    ]
    grammar = branches[0] if len(branches) == 1 else xgr.Grammar.union(*branches)
    return str(grammar)


def planner_grammar(max_chars: int | None = 1024) -> str:
    """EBNF of one planner output: a thought of at most ``max_chars`` characters (``None``: unbounded)
    followed by exactly one of `` Next: caller.``, `` Next: conclusion.``, `` Next: give up.``.

    The thought may itself contain a marker (excluding one costs xgrammar far more per token), so a
    server's grammar lets text follow a marker; :class:`Constrainer` stops a row as soon as its
    grammar can end, and :func:`glpft.parsing.parse_planner_output` cuts at the first marker anyway.
    A bounded thought costs far more to mask: xgrammar checks every token against the character
    count (measured on CPU, 32k vocabulary: ~8 ms per token bounded vs ~0.25 ms unbounded).
    """
    if max_chars is not None and max_chars < 0:
        raise ValueError(f"planner grammar: max_chars must be >= 0 or None, not {max_chars}")
    thought = "[^\\0]*" if max_chars is None else f"[^\\0]{{0,{max_chars}}}"
    markers = " | ".join(_ebnf_literal(" " + m) for m in (NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP))
    return f"root ::= {thought} ({markers})\n"


def request_params(grammar_text: str, server: str, *, legacy_vllm: bool = False) -> dict[str, Any]:
    """Extra body fields that constrain one request to ``grammar_text`` on an OpenAI-compatible server.

    ``vllm``: ``structured_outputs.grammar`` (recent vLLM; the ``guided_grammar`` field it replaced
    was removed in v0.12) or, with ``legacy_vllm``, ``guided_grammar``; ``sglang``: ``ebnf``.
    """
    kind = server.lower()
    if kind == "vllm":
        return (
            {"guided_grammar": grammar_text}
            if legacy_vllm
            else {"structured_outputs": {"grammar": grammar_text}}
        )
    if kind == "sglang":
        return {"ebnf": grammar_text}
    raise ValueError(f"structured decoding: server {server!r} is not supported (known: vllm, sglang)")


class Grammar(str):
    """Grammar text (a plain ``str`` to servers and caches) with how a local decoding loop closes it
    when the token budget runs out (:meth:`Constrainer.mask` with ``remaining``).

    ``reserve``: once a row has at most this many tokens left and its text is not yet a sentence,
    closing starts; ``tail``: grammar text that must follow from then on (the planner's markers: the
    thought so far stays, a marker ends it); ``close_json``: from then on the row takes, among the
    tokens its grammar allows, the first of :data:`CLOSERS` (a string is closed, then the object),
    so an output cut by ``max_new_tokens`` is still a whole call. A server has no such hook: it gets
    the text and ``max_tokens``.
    """

    reserve: int = 0
    tail: str | None = None
    close_json: bool = False

    @classmethod
    def closing(cls, text: str, reserve: int, tail: str | None = None, close_json: bool = False) -> Grammar:
        g = cls(text)
        g.reserve, g.tail, g.close_json = reserve, tail, close_json
        return g


#: Characters a closing JSON row prefers, in order, where no text is forced: end the string, the
#: object, the array; then separate, or start the shortest value (number, empty object/array,
#: boolean, null).
CLOSERS = ('"', "}", "]", ":", ",", "0", "{", "[", "t", "f", "n")


def _int32_bit(bit: int) -> int:
    """``1 << bit`` as a signed int32 word (bit 31 is the sign bit)."""
    return (1 << bit) - (1 << 32) if bit == 31 else 1 << bit


class RowState:
    """The grammar state of one generated sequence; made by :meth:`Constrainer.row`."""

    def __init__(self, constrainer: Constrainer, matcher: Any, policy: Grammar | None = None):
        self._con = constrainer
        self.matcher = matcher
        self.policy = policy
        #: the budget ran low and the row is being closed (see :class:`Grammar`)
        self.closing = False
        #: tokens at which the mask moved this row's argmax (the constraint changed the output)
        self.changed_tokens = 0
        #: tokens :meth:`accept` refused (picked without the mask, or after the row was done)
        self.rejected_tokens = 0

    @property
    def done(self) -> bool:
        """A stop token was accepted: the grammar is finished and the row must stop."""
        return self.matcher.is_terminated()

    @property
    def complete(self) -> bool:
        """The text so far is a whole sentence of the grammar: only stop tokens are allowed next."""
        return self.matcher.is_completed()

    def mask(self, logits: torch.Tensor, index: int | None = None) -> None:
        """Mask this row's logits in place: ``logits`` is ``[V]``, ``[1, V]``, or ``[B, V]`` with ``index``."""
        if logits.dim() == 1:
            self._con.mask(logits.unsqueeze(0), [self])
        elif index is not None:
            self._con.mask(logits, [self if i == index else None for i in range(logits.shape[0])])
        elif logits.shape[0] == 1:
            self._con.mask(logits, [self])
        else:
            raise ValueError(f"RowState.mask: logits of shape {tuple(logits.shape)} need an index")

    def start_closing(self) -> None:
        """Close this row from now on (its :class:`Grammar` policy); a no-op without one."""
        if self.closing or self.policy is None:
            return
        self.closing = True
        if self.policy.tail is not None:
            self.matcher = self._con._xgr.GrammarMatcher(self._con.compile(self.policy.tail))

    def accept(self, token_id: int) -> bool:
        """Advance by one generated token; ``False`` (state unchanged) when the grammar forbids it."""
        token_id = int(token_id)
        if self.done:
            ok = False
        elif self.complete:
            ok = token_id in self._con.stop_ids and self.matcher.accept_token(token_id)
        else:
            ok = self.matcher.accept_token(token_id)
        if not ok:
            self.rejected_tokens += 1
        return ok


class Constrainer:
    """Grammar constraints for one tokenizer: compiled grammars (LRU by text) and batched masking.

    ``stop_ids`` end a row (the model's EOS); ``vocab_size`` is the width of the model's logits
    (default ``len(tokenizer)``; pass ``model.config.vocab_size`` when the embedding is padded).
    Counters for a run's report: ``changed_tokens`` (mask moved the argmax), ``changed_rows`` (rows
    with at least one such token), ``masked_tokens``, ``compiled`` / ``cache_hits``.
    """

    def __init__(
        self,
        tokenizer: Any,
        stop_ids: Iterable[int],
        vocab_size: int | None = None,
        cache_size: int = 64,
        max_threads: int = 8,
    ):
        import xgrammar as xgr

        self._xgr = xgr
        self.stop_ids = frozenset(int(i) for i in stop_ids)
        if not self.stop_ids:
            raise ValueError("Constrainer: stop_ids is empty; a finished grammar could never stop")
        self.vocab_size = int(vocab_size if vocab_size is not None else len(tokenizer))
        self.info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=self.vocab_size, stop_token_ids=sorted(self.stop_ids)
        )
        # our LRU bounds memory; the compiler's own cache would keep every grammar ever seen
        self.compiler = xgr.GrammarCompiler(self.info, max_threads=max_threads, cache_enabled=False)
        self.cache_size = cache_size
        self._compiled: OrderedDict[str, Any] = OrderedDict()
        self._bitmask = xgr.allocate_token_bitmask(1, self.vocab_size)
        words = [0] * self._bitmask.shape[1]
        for i in self.stop_ids:
            words[i // 32] |= 1 << (i % 32)
        # bit 31 of a word is the int32 sign bit: wrap the words to the bitmask's signed type
        self._stop_only = torch.tensor(
            [w - (1 << 32) if w >= 1 << 31 else w for w in words], dtype=torch.int32
        )
        self.compiled = self.cache_hits = 0
        self.changed_tokens = self.changed_rows = self.masked_tokens = 0
        #: rows that ran low on budget and were closed by their policy
        self.closed_rows = 0
        # single-token spellings of CLOSERS, in priority order (a tokenizer may lack some)
        decoded = self.info.decoded_vocab
        self._piece_ids: dict[bytes, int] = {}
        for i, piece in enumerate(decoded[: self.vocab_size]):
            if piece and i not in self.stop_ids:
                self._piece_ids.setdefault(piece, i)
        self.closer_ids = [self._piece_ids[c.encode()] for c in CLOSERS if c.encode() in self._piece_ids]

    def compile(self, grammar_text: str) -> Any:
        """The compiled grammar of ``grammar_text`` (xgrammar ``CompiledGrammar``), cached by text."""
        hit = self._compiled.get(grammar_text)
        if hit is not None:
            self._compiled.move_to_end(grammar_text)
            self.cache_hits += 1
            return hit
        compiled = self.compiler.compile_grammar(grammar_text)
        self.compiled += 1
        self._compiled[grammar_text] = compiled
        if len(self._compiled) > self.cache_size:
            self._compiled.popitem(last=False)
        return compiled

    def row(self, grammar_text: str | None) -> RowState | None:
        """A fresh grammar state for one sequence; ``None`` (an unconstrained row) for no grammar.
        A :class:`Grammar` brings its closing policy."""
        if grammar_text is None:
            return None
        policy = grammar_text if isinstance(grammar_text, Grammar) else None
        return RowState(self, self._xgr.GrammarMatcher(self.compile(grammar_text)), policy)

    def _closing_token(self, row: RowState, words: Any) -> int | None:
        """The token a closing JSON row takes: the longest allowed one along the text its grammar
        forces (a tool name, a key), else the first allowed of :data:`CLOSERS`, else None (the
        model picks among the allowed)."""

        def allowed(t: int) -> bool:
            return bool((int(words[t >> 5]) >> (t & 31)) & 1)

        forced = row.matcher.find_jump_forward_string().encode()
        for n in range(min(len(forced), 48), 0, -1):
            t = self._piece_ids.get(forced[:n])
            if t is not None and allowed(t):
                return t
        return next((t for t in self.closer_ids if allowed(t)), None)

    def mask(
        self,
        logits: torch.Tensor,
        rows: Sequence[RowState | None],
        remaining: Sequence[int] | None = None,
    ) -> None:
        """Set disallowed logits to −inf in place, row ``i`` of ``logits`` [B, V] by ``rows[i]``.

        Rows that are ``None`` or done are untouched. One bitmask is filled (a row whose grammar is
        complete allows only the stop ids) and applied in one call; the bitmask follows ``logits``'
        device. ``remaining[i]``: tokens row ``i`` may still generate (this one included); a row whose
        :class:`Grammar` reserve it reaches starts closing.
        """
        if logits.dim() != 2 or logits.shape[0] != len(rows):
            raise ValueError(f"Constrainer.mask: logits {tuple(logits.shape)} for {len(rows)} rows")
        if logits.shape[1] != self.vocab_size:
            raise ValueError(
                f"Constrainer.mask: logits have {logits.shape[1]} columns, the constrainer "
                f"{self.vocab_size}; pass vocab_size=<logits width> to Constrainer"
            )
        active = [i for i, r in enumerate(rows) if r is not None and not r.done]
        if not active:
            return
        if remaining is not None:
            for i in active:
                row = rows[i]
                if (
                    row.policy is not None
                    and not row.closing
                    and not row.complete
                    and remaining[i] <= row.policy.reserve
                ):
                    row.start_closing()
                    self.closed_rows += 1
        if self._bitmask.shape[0] < len(rows):
            self._bitmask = self._xgr.allocate_token_bitmask(len(rows), self.vocab_size)
        bitmask = self._bitmask[: len(rows)]
        for i in active:
            if rows[i].complete:
                bitmask[i] = self._stop_only
            else:
                rows[i].matcher.fill_next_token_bitmask(bitmask, i)
        # the mask moves a row's argmax iff it forbids the unmasked argmax (ties go to the lowest id
        # either way): one bit lookup per row instead of a second argmax over the vocabulary
        words = bitmask.numpy()
        for i in active:
            row = rows[i]
            if row.closing and row.policy.close_json and not row.complete:
                pick = self._closing_token(row, words[i])
                if pick is not None:  # a closing row takes that one token: a one-bit mask
                    bitmask[i] = 0
                    bitmask[i, pick >> 5] = _int32_bit(pick & 31)
        top = logits.argmax(dim=-1).tolist()
        if logits.device != bitmask.device:
            bitmask = bitmask.to(logits.device, non_blocking=True)
        self._xgr.apply_token_bitmask_inplace(logits, bitmask, indices=active)
        self.masked_tokens += len(active)
        for i in active:
            if not (int(words[i, top[i] >> 5]) >> (top[i] & 31)) & 1:
                if rows[i].changed_tokens == 0:
                    self.changed_rows += 1
                rows[i].changed_tokens += 1
                self.changed_tokens += 1


_TEXT_COMPILER: Any = None
_TEXT_GRAMMARS: OrderedDict[str, Any] = OrderedDict()


def allows_prefix(grammar_text: str, text: str) -> bool:
    """Whether ``text`` is a prefix of some sentence of the grammar (a cut output still fits; text the
    grammar forbids does not) — checked on characters, with no tokenizer."""
    import xgrammar as xgr

    global _TEXT_COMPILER
    if _TEXT_COMPILER is None:
        _TEXT_COMPILER = xgr.GrammarCompiler(xgr.TokenizerInfo([]), cache_enabled=False)
    compiled = _TEXT_GRAMMARS.get(grammar_text)
    if compiled is None:
        compiled = _TEXT_COMPILER.compile_grammar(grammar_text)
        _TEXT_GRAMMARS[grammar_text] = compiled
        if len(_TEXT_GRAMMARS) > 64:
            _TEXT_GRAMMARS.popitem(last=False)
    else:
        _TEXT_GRAMMARS.move_to_end(grammar_text)
    return bool(xgr.GrammarMatcher(compiled).accept_string(text)) if text else True


#: ``--constrained_decoding``: off (paper parity), the caller only, or the caller and the planner.
CONSTRAINT_MODES = ("off", "caller", "all")
#: Servers whose structured-output parameters :func:`request_params` knows.
SERVERS = ("serve-models", "vllm", "vllm-legacy", "sglang")


#: Tokens a closing caller keeps: enough to end a string, the object and a few nested values.
CALLER_RESERVE = 12


def role_grammar(
    mode: str,
    role: str,
    tools: Sequence[Mapping[str, Any]],
    required: Mapping[str, Sequence[str]] | None = None,
) -> Grammar | None:
    """The grammar of one ``role`` output under ``mode`` (None: unconstrained), with its closing policy.

    The caller's takes ToolBench's reality into account: keys in any order, ``integer`` inputs as any
    number (real calls pass floats); ``required`` (tool name → input keys, where the tool docs say)
    must be present, and each one reserves room to be written when the budget runs low. The
    planner's thought is bounded by the token budget, not a character count (slow to mask): the last
    tokens are kept for a marker (:class:`Grammar`).
    """
    if mode not in CONSTRAINT_MODES:
        raise ValueError(f"constrained decoding must be one of {CONSTRAINT_MODES}, not {mode!r}")
    if role == "caller" and mode in ("caller", "all"):
        required = {k: list(v) for k, v in (required or {}).items() if v}
        text = caller_grammar(tools, required, any_order=True, integer_as_number=True)
        # room for a key that is being written when closing starts, and for the required ones
        key = max((len(k) for t in tools for k in (t.get("input") or {})), default=0)
        keys = max((sum(len(k) + 6 for k in ks) for ks in required.values()), default=0)
        return Grammar.closing(text, CALLER_RESERVE + min(key, 64) + keys, close_json=True)
    if role == "planner" and mode == "all":
        markers = " | ".join(_ebnf_literal(" " + m) for m in (NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP))
        # worst case a marker is spelled a character per token, then the stop token
        longest = max(len(" " + m) for m in (NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP))
        return Grammar.closing(planner_grammar(None), longest + 1, tail=f"root ::= ({markers})\n")
    return None


def server_params(grammar: str, server: str) -> dict[str, Any]:
    """:func:`request_params` by server name (``serve-models`` accepts vLLM's current spelling)."""
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r} for structured outputs; known: {', '.join(SERVERS)}")
    if server == "serve-models":
        return request_params(grammar, "vllm")
    if server == "vllm-legacy":
        return request_params(grammar, "vllm", legacy_vllm=True)
    return request_params(grammar, server)
