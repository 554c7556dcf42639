"""`alpha-umi <subcommand> …`: one console command dispatching to each job's ``main(argv)``.

Modules are imported lazily so that e.g. ``alpha-umi prepro`` never imports torch.
"""

from __future__ import annotations

import importlib
import sys

#: subcommand → ("module", "one-line help")
COMMANDS: dict[str, tuple[str, str]] = {
    "prepro": ("glpft.prepro", "raw ToolBench answers → stage-1/2 data and the four GLPFT role datasets"),
    "make-tiny-model": ("glpft.tiny_model", "write a tiny local Llama + tokenizer (tests, demo)"),
    "train": ("glpft.train", "GLPFT fine-tuning of one role (full or LoRA; torchrun/DeepSpeed ready)"),
    "merge-lora": ("glpft.lora", "fold a LoRA adapter into its base model and save a full checkpoint"),
    "evaluate": ("glpft.metrics", "score predictions.json: Plan ACC, Act. EM, Hallu., Arg. F1, ROUGE-L"),
    "serve-tools": ("toolbench_multillm.server", "serve ToolBench tool calls from a response cache (FastAPI + uvicorn)"),
    "tools": ("toolbench_multillm.cache", "tool-response cache: `tools build-cache` seeds it from ToolBench answers"),
    "tooleval": ("toolbench_multillm.tooleval", "ToolEval: convert answers, pass rate, win rate, report"),
    "infer": (
        "glpft.infer",
        "static inference: planner → caller/summarizer over gold steps → predictions.json",
    ),
    "run-queries": (
        "toolbench_multillm.run_queries",
        "real-time α-UMi/backbone/OpenAI agent with CoT or DFSDT over query files",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: alpha-umi <subcommand> [options]", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"alpha-umi: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
