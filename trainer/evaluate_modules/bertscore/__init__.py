"""Local evaluate module: see bertscore.py."""
