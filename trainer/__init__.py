"""EvalHub's Django-free training library: load base models, fine-tune with PEFT, generate, score.

Submodules are imported explicitly (`from trainer.models import load_base`) so that importing `trainer` stays cheap
and never pulls in torch for callers that only need configs or errors.
"""
