"""Local evaluate module: see token_f1.py."""
