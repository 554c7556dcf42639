"""GLPFT: the α-UMi protocol, ToolBench → GLPFT data pipeline, training, static inference and metrics."""

__version__ = "0.1.0"
