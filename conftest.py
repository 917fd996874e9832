"""Thin on purpose: the machinery lives in fixtures/."""

pytest_plugins = ["fixtures.plugin", "fixtures.app_plugin"]
