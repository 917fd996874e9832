"""Thin on purpose: the machinery lives in fixtures/.

Its plugins are registered with pytest by the `pytest11` entry points in pyproject.toml
(installed by `pip install -e .`), so their options are known before pytest reads any path.
"""
