"""Fixtures for the feedback tests: one torch thread, a tiny random Llama registered as a base model, and no model
cached between tests."""

from tests import model_fixtures

# Defined once in tests/model_fixtures.py; assigned here so they apply to this package (autouse included).
_one_torch_thread = model_fixtures._one_torch_thread
tiny_model_dir = model_fixtures.tiny_model_dir
tiny_base = model_fixtures.tiny_base
_fresh_generators = model_fixtures._fresh_generators
