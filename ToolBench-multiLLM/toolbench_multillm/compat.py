"""The original α-UMi ToolBench-multiLLM entry points, with their flags, mapped onto this project's jobs.

The scripts at the original paths (``ToolBench-multiLLM/toolbench/inference/qa_pipeline.py`` and
``toolbench/tooleval/{convert_to_answer_format,eval_pass_rate,eval_preference}.py``) call these, so
the original README's commands run verbatim::

    cd ToolBench-multiLLM; export PYTHONPATH=./
    python toolbench/inference/qa_pipeline.py --backbone_model collab_agent_v3 --tool_root_dir … \\
        --planner_model_path … --caller_model_path … --summarizer_model_path … --method DFS_woFilter_w2 \\
        --input_query_file … --output_answer_file output_res/$EXP_NAME/$TEST_SET --toolbench_key $TBKEY
    python toolbench/tooleval/convert_to_answer_format.py --answer_dir … --method DFS_woFilter_w2 --output …
    python toolbench/tooleval/eval_pass_rate.py --converted_answer_path … --save_path … \\
        --reference_model … --test_ids … --max_eval_threads 1 --evaluate_times 7     # $API_POOL_FILE
    python toolbench/tooleval/eval_preference.py --ref_converted_answer_path … … --use_pass_rate true

No second implementation: each function maps the original's flags and calls the job.
"""

from __future__ import annotations

import re
import sys


def _args(argv: list[str] | None) -> list[str]:
    return list(sys.argv[1:] if argv is None else argv)


def _judge_flags(argv: list[str]) -> list[str]:
    """ToolEval's ``--evaluator tooleval_<model>_default`` names the judge model: ``--judge_model``."""
    out, model = [], None
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name == "--evaluator":
            value = value if eq else next(it, "")
            m = re.fullmatch(r"tooleval_(.+?)(?:_(?:default|normalized|fn))?", value)
            model = m.group(1) if m else None
            continue
        out.append(arg)
    if model and not any(a.split("=")[0] == "--judge_model" for a in out):
        out += ["--judge_model", model]
    return out


def qa_pipeline(argv: list[str] | None = None) -> int:
    """``toolbench/inference/qa_pipeline.py``: ``alpha-umi run-queries`` (same flags)."""
    from toolbench_multillm import run_queries

    return run_queries.main(_args(argv))


def convert_to_answer_format(argv: list[str] | None = None) -> int:
    """``toolbench/tooleval/convert_to_answer_format.py``: ``alpha-umi tooleval convert``."""
    from toolbench_multillm import tooleval

    argv = _args(argv)
    if not any(a.split("=")[0] == "--output" for a in argv):
        argv += ["--output", "converted_answers.json"]  # the original's default
    return tooleval.main(["convert", *argv])


def eval_pass_rate(argv: list[str] | None = None) -> int:
    """``toolbench/tooleval/eval_pass_rate.py``: ``alpha-umi tooleval pass-rate`` (keys: $API_POOL_FILE)."""
    from toolbench_multillm import tooleval

    return tooleval.main(["pass-rate", *_judge_flags(_args(argv))])


def eval_preference(argv: list[str] | None = None) -> int:
    """``toolbench/tooleval/eval_preference.py``: ``alpha-umi tooleval win-rate`` (keys: $API_POOL_FILE)."""
    from toolbench_multillm import tooleval

    return tooleval.main(["win-rate", *_judge_flags(_args(argv))])
