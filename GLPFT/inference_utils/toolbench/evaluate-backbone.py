"""Drop-in for the original script (same flags): single-LLM static metrics, glpft.metrics."""

import sys

from glpft.compat import evaluate

if __name__ == "__main__":
    sys.exit(evaluate("backbone"))
