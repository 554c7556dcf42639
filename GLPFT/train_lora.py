"""Drop-in for the original train_lora.py (same flags, torchrun ready): GLPFT training, glpft.train."""

import sys

from glpft.compat import train_mem

if __name__ == "__main__":
    sys.exit(train_mem())
