"""Drop-in for the original script (same flags): α-UMi static metrics, glpft.metrics."""

import sys

from glpft.compat import evaluate

if __name__ == "__main__":
    sys.exit(evaluate("multi_agent"))
