"""Drop-in for the original script (same flags, torchrun ready): static inference, glpft.infer."""

import sys

from glpft.compat import infer_pipeline

if __name__ == "__main__":
    sys.exit(infer_pipeline())
