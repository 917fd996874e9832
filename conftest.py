"""Thin on purpose: the machinery lives in fixtures/.

Its plugins (fixtures.plugin, fixtures.balance_plugin, fixtures.backup.plugin,
fixtures.app_plugin) are loaded by `addopts` in pyproject.toml, early enough for pytest to
know their options before it reads any path.
"""
