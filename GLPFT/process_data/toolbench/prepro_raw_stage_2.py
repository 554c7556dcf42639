"""Drop-in for the original script (same flags): raw_data_stage_1.json → raw_data_stage_2.json."""

import sys

from glpft.compat import prepro_stage2

if __name__ == "__main__":
    sys.exit(prepro_stage2())
