"""Drop-in for the original script (same flags): real-time agents and search, alpha-umi run-queries."""

import sys

from toolbench_multillm.compat import qa_pipeline

if __name__ == "__main__":
    sys.exit(qa_pipeline())
