"""Start-up: a run imports only what it needs (the time is measured by the benchmark, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import suite_environ

ROOT = Path(__file__).resolve().parent.parent

# Run pytest in a fresh interpreter, then list the top-level packages it imported.
PROBE = (
    "import json, sys, pytest; code = pytest.main(sys.argv[1:]);"
    "print('MODULES=' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})), flush=True)"
)
NEVER_AT_START = {"httpx", "anyio", "testcontainers", "docker", "starlette", "uvicorn", "jwt"}


def imported(*args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> tuple[set[str], str]:
    environ = suite_environ()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
         "-p", "no:cacheprovider", *args],
        cwd=cwd or ROOT, env=environ | (env or {}), capture_output=True, text=True, timeout=300,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES="))), done.stdout + done.stderr


def test_collect_only_imports_no_database_or_http_library():
    modules, output = imported("--collect-only", "-q", str(ROOT / "verifications"))
    assert "tests collected" in output, output
    # the database, the env target's model, the history charts (pytest-html's own plugin still loads Jinja2)
    unwanted = NEVER_AT_START | {"psycopg", "pydantic_settings", "pygal"}
    assert not modules & unwanted, sorted(modules & unwanted)


def test_database_criteria_import_no_http_or_container_library(server, healthy_url, tmp_path):
    modules, output = imported(
        "-m", "post_deploy and (balance or tenancy or data or migration) and not health", "-k", "not cross_org",
        f"--postdeploy-report-dir={tmp_path / 'reports'}", str(ROOT / "verifications"),
        env={"DATABASE_URL": healthy_url}, cwd=str(tmp_path),
    )
    assert "psycopg" in modules, output
    assert not modules & NEVER_AT_START, sorted(modules & NEVER_AT_START)
