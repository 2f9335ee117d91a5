"""Local evaluate module: see rouge.py."""
