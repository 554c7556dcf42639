"""Real-time α-UMi: ToolBench tools, environment, tool server, search (CoT/DFSDT) and ToolEval."""
