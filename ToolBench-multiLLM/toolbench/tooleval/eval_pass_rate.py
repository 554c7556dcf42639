"""Drop-in for the original script (same flags; keys from $API_POOL_FILE): ToolEval pass rate."""

import sys

from toolbench_multillm.compat import eval_pass_rate

if __name__ == "__main__":
    sys.exit(eval_pass_rate())
