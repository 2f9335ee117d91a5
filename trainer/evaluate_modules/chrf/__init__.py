"""Local evaluate module: see chrf.py."""
