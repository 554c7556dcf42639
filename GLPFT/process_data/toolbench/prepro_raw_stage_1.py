"""Drop-in for the original script (same flags): raw ToolBench answers → raw_data_stage_1.json."""

import sys

from glpft.compat import prepro_stage1

if __name__ == "__main__":
    sys.exit(prepro_stage1())
