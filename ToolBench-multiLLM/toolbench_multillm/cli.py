"""`alpha-umi <subcommand> …`: one console command dispatching to each job's ``main(argv)``.

It lives in ``toolbench_multillm`` because it must name the jobs of both packages (``glpft`` never
names this one). Modules are imported lazily so that e.g. ``alpha-umi prepro`` never imports torch.
"""

from __future__ import annotations

import importlib
import sys

#: subcommand → ("module", "one-line help")
COMMANDS: dict[str, tuple[str, str]] = {
    "prepro": ("glpft.prepro", "raw ToolBench answers → stage-1/2 data and the four GLPFT role datasets"),
    "train": ("glpft.train_args", "GLPFT fine-tuning of one role (full or LoRA; torchrun/DeepSpeed ready)"),
    "merge-lora": ("glpft.lora", "fold a LoRA adapter into its base model and save a full checkpoint"),
    "infer": ("glpft.infer", "static inference over gold steps → predictions.json"),
    "evaluate": ("glpft.metrics", "score predictions.json: Plan ACC, Act. EM, Hallu., Arg. F1, ROUGE-L"),
    "tools": ("toolbench_multillm.cache", "tool-response cache: `tools build-cache` from ToolBench answers"),
    "serve-tools": ("toolbench_multillm.server", "serve tool calls from a cache (FastAPI)"),
    "serve-models": (
        "glpft.serve_models",
        "OpenAI-compatible completions for the roles (one base + LoRA adapters)",
    ),
    "serve-agent": ("toolbench_multillm.agent_server", "α-UMi as an OpenAI tool-calling chat endpoint"),
    "run-queries": ("toolbench_multillm.run_queries", "real-time agent with CoT or DFSDT"),
    "tooleval": ("toolbench_multillm.tooleval", "ToolEval: convert answers, pass rate, win rate, report"),
    "demo": ("toolbench_multillm.demo", "the whole α-UMi chain on a CPU in minutes, no downloads"),
    "make-tiny-model": ("glpft.tiny_model", "write a tiny local Llama + tokenizer (tests, demo)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: alpha-umi <subcommand> [options]    (alpha-umi --version)", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"alpha-umi {version('alpha-umi')}")
        except PackageNotFoundError:
            print("alpha-umi (not installed as a distribution)")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"alpha-umi: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
