"""Thin on purpose: the machinery lives in fixtures/."""

pytest_plugins = ["fixtures.plugin", "fixtures.balance_plugin", "fixtures.backup.plugin", "fixtures.app_plugin"]
