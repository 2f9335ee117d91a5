"""Local evaluate module: see exact_match.py."""
