"""Local evaluate module: see bleu.py."""
