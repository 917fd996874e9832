"""The installed plugin: options known before pytest reads any path, and `postdeploy schema`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import suite_environ

ROOT = Path(__file__).resolve().parent.parent


def test_option_values_that_are_existing_paths_are_not_taken_for_test_paths(tmp_path):
    """As a user types it, from the checkout, with the space form: --postdeploy-report-dir and --postdeploy-config
    name a folder and a file that exist. pytest must still find the project's configuration
    (testpaths, markers, addopts) and sign off the criteria only."""
    reports = tmp_path / "signoffs"
    reports.mkdir()
    config = tmp_path / "empty.toml"
    config.write_text("# the reference defaults\n")
    environ = suite_environ()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "post_deploy", "--postdeploy-target", "demo",
         "--postdeploy-report-dir", str(reports), "--postdeploy-config", str(config)],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "SIGN-OFF: GO" in output
    assert "configfile: pyproject.toml" in output
    (folder,) = [p for p in reports.iterdir() if p.is_dir()]  # beside it: history.sqlite, history.html
    criteria = json.loads((folder / "sign-off.json").read_text())["criteria"]
    assert criteria and all(c["nodeid"].startswith("verifications/") for c in criteria)


def test_schema_is_the_json_schema_of_the_configuration():
    done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "schema"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert schema["title"] == "postdeploy.toml"
    assert schema["additionalProperties"] is False
    assert {"database", "tenancy", "balance", "backup", "app"} <= set(schema["properties"])
    tenancy = schema["$defs"]["TenancySettings"]
    assert tenancy["additionalProperties"] is False and "tenant_column" in tenancy["properties"]
