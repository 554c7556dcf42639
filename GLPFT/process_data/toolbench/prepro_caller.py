"""Drop-in for the original script (same flags): raw_data_stage_2.json → train_caller.json."""

import sys

from glpft.compat import prepro_role

if __name__ == "__main__":
    sys.exit(prepro_role("caller"))
