"""Local evaluate module: see output_length.py."""
