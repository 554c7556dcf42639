"""Drop-in for the original script (same flags): answer files → ToolEval's converted format."""

import sys

from toolbench_multillm.compat import convert_to_answer_format

if __name__ == "__main__":
    sys.exit(convert_to_answer_format())
