"""Access expectations, one module per app. The matrix test (tests/test_access_matrix.py) fails for any URL of the
site or API that no module here describes.

Each module defines `RULES: dict[str, Rule]` keyed by URL name ("namespace:name" for pages, "api-..." for the API)
and may define `objects(world) -> dict` that creates what its URLs point at, inside `world.project`.
"""
