"""The built package, as a user installs it: the sdist and the wheel build and pass `twine check`;
the wheel, installed (not editable) into a fresh virtual environment outside the checkout beside
PyPI's `fixtures` and `testtools`, signs off the demo from an empty folder and an application's
repository from its own postdeploy.toml, and leaves another project's pytest run as it was."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from postdeploy import reference
from postdeploy.reference.backups import Dumps, backup_source

from installs import VERSION, Installed, build, fresh_venv
from installs import check as _check

pytestmark = pytest.mark.xdist_group("packaging")  # one build and one environment for the module


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    dist = tmp_path_factory.mktemp("dist")
    build(dist)
    built = sorted(p.name for p in dist.iterdir())
    assert built == [f"postdeploy-{VERSION}-py3-none-any.whl", f"postdeploy-{VERSION}.tar.gz"]
    _check(subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                          capture_output=True, text=True, timeout=120))
    # PyPI's fixtures (and testtools, which needs it) first: postdeploy must not take their names.
    environment = fresh_venv(dist, "fixtures", "testtools")
    yield environment
    environment.remove()


def test_wheel_installs_only_postdeploy_beside_pypis_fixtures(installed: Installed, tmp_path: Path):
    _check(installed.run("python", "-c", "from fixtures import Fixture; import testtools, postdeploy.verifications",
                         cwd=tmp_path))
    shown = _check(installed.run("python", "-m", "pip", "show", "-f", "postdeploy", cwd=tmp_path)).stdout
    files = [line.strip() for line in shown.split("Files:", 1)[1].splitlines() if line.strip()]
    outside = [f for f in files if not f.startswith(("postdeploy/", "postdeploy-")) and f != "../../../bin/postdeploy"]
    assert files and not outside, outside
    assert "postdeploy/verifications/test_migration.py" in files
    assert "postdeploy/report/templates/sign-off.html" in files
    assert any(f.startswith("postdeploy/reference/migrations/") and f.endswith(".sql") for f in files)
    assert _check(installed.run("postdeploy", "--version", cwd=tmp_path)).stdout.strip() == f"postdeploy {VERSION}"


def test_demo_signs_off_from_an_empty_folder(installed: Installed, tmp_path: Path):
    done = installed.run("pytest", "-m", "post_deploy", "--postdeploy-target", "demo", cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - "), output
    assert "verifications/test_migration.py" in output  # node ids as in the checkout, no site-packages path
    assert "site-packages" not in output
    assert len([p for p in (tmp_path / "reports").iterdir() if p.is_dir()]) == 1


def test_another_projects_pytest_run_is_untouched(installed: Installed, tmp_path: Path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    done = installed.run("pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"\.\s+\[100%\]\n1 passed in [0-9.]+s\n", done.stdout), done.stdout
    assert done.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tests"]  # no reports/, nothing else


def test_a_signoff_from_an_applications_root_leaves_its_test_conftest_alone(installed: Installed, tmp_path: Path):
    """An application's tests/conftest.py imports its own test dependencies, which the sign-off's
    environment may lack: a sign-off started at the application's root collects the criteria and
    never loads it; the application's own run still does."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text("import a_driver_the_signoff_lacks\n")
    done = installed.run("pytest", "-m", "post_deploy", "--postdeploy-target", "demo", "-k", "test_no_failed_migration",
                         cwd=tmp_path)
    output = done.stdout + done.stderr
    assert "a_driver_the_signoff_lacks" not in output, output
    assert output.rstrip().splitlines()[-1].startswith("SIGN-OFF: PARTIAL GO - "), output
    own = installed.run("pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert own.returncode == 4 and "No module named 'a_driver_the_signoff_lacks'" in own.stdout + own.stderr, own


def test_an_applications_repository_signs_off_its_database(installed: Installed, server, healthy_url, tmp_path: Path):
    """init finds prisma/migrations and writes it relative to the file; the backup folder given
    relative to the file is found too, from the repository and from a subfolder alike."""
    app = tmp_path / "app"
    shutil.copytree(reference.MIGRATIONS_DIR, app / "prisma" / "migrations")
    env = {"DATABASE_URL": healthy_url, "DEFAULT_ORG_ID": reference.DEFAULT_ORG_ID}
    _check(installed.run("postdeploy", "init", cwd=app, env=env))
    config = app / "postdeploy.toml"
    text = config.read_text()
    assert '\nfolder = "prisma/migrations"\n' in text
    # What a team adds on review: the trigger its deploy applies outside Prisma, and its backups
    # (init declared no alerting: no route was set where it ran).
    trigger = reference.TRIGGER_SQL_PATH.relative_to(reference.MIGRATIONS_DIR).as_posix()
    text = text.replace('\nfolder = "prisma/migrations"\n', f'\nfolder = "prisma/migrations"\nextra_sql = ["{trigger}"]\n')
    with backup_source("healthy", Dumps.of(healthy_url, tmp_path / "dumps"), app / "backups") as (backups, _):
        config.write_text(text + "\n" + backups.replace(str(app / "backups"), "backups"))
        _check(installed.run("pytest", "-m", "baseline", cwd=app, env=env))
        done = installed.run("pytest", "-m", "post_deploy", cwd=app, env=env)
        (app / "ci").mkdir()
        elsewhere = installed.run("pytest", "-m", "post_deploy", "--postdeploy-config", "../postdeploy.toml",
                                  "--postdeploy-baseline", "../reports/baseline.json", cwd=app / "ci", env=env)
    for run, reports in ((done, app / "reports"), (elsewhere, app / "ci" / "reports")):
        output = run.stdout + run.stderr
        assert run.returncode == 0 and output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - "), output
        newest = max(reports.glob("env-*/sign-off.json"))
        outcomes = {c["name"]: c["outcome"] for c in json.loads(newest.read_text())["criteria"]}
        # The release's folder and the backups were found through the file's relative paths.
        assert outcomes["test_schema_matches_release"] == "passed", outcomes
        assert outcomes["test_latest_backup_age"] == "passed", outcomes
