"""EvalHub's local Hugging Face `evaluate` metric modules, one folder per metric (`evaluate.load(<folder>)`).

They ship with the code so that nothing is fetched from the evaluate hub at run time. Every module scores each
prediction on its own and returns `{"per_item": {name: [float, ...]}, "corpus": {name: float | None}}`; the
`__init__.py` files only make the folders part of the installed package.
"""
