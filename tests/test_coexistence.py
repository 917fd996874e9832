"""postdeploy as a guest: installed beside the most used pytest plugins, in projects that are not a
sign-off, it changes nothing. Every option of the suite is --postdeploy-*, and its fixtures and hooks
exist only in a run that asks for the suite (postdeploy.plugin).

The plugins checked (docs/development.md lists them too): those the issue names, installed first,
then the rest of the 25 most downloaded pytest plugins."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from installs import Installed, build, check, fresh_venv

pytestmark = pytest.mark.xdist_group("coexistence")  # one build and one environment for the module

BESIDE = ("pytest-django", "Django", "pytest-embedded", "pytest-cov", "pytest-asyncio", "pytest-mock",
          "pytest-timeout", "pytest-env", "pytest-randomly", "pytest-benchmark")
# The rest of the 25 most downloaded pytest plugins (pytest-runner, a setup.py command and no plugin, aside).
MOST_USED = ("pytest-json-ctrf", "pytest-xdist", "pytest-rerunfailures", "pytest-metadata", "pytest-html",
             "pytest-split", "pytest-json-report", "pytest-repeat", "pytest-socket", "pytest-unordered",
             "pytest-base-url", "pytest-playwright", "pytest-custom-exit-code", "pytest-icdiff", "pytest-order",
             "pytest-httpx", "pytest-instafail", "pytest-forked")

DJANGO_SETTINGS = """\
SECRET_KEY = "only-for-this-test"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
USE_TZ = True
"""
DJANGO_TESTS = """\
from django.conf import settings as django_settings
from django.contrib.auth.models import User


def test_settings_fixture_is_pytest_djangos(settings):
    settings.TIME_ZONE = "Europe/Paris"
    assert django_settings.TIME_ZONE == "Europe/Paris"


def test_db_fixture_is_pytest_djangos(db):
    User.objects.create(username="ada")
    assert User.objects.count() == 1
"""
# pytest-embedded claims --target (and --count, as pytest-repeat does) itself: beside it, such a
# conftest fails with or without postdeploy, so those runs leave pytest-embedded out.
NO_EMBEDDED = ("-p", "no:pytest_embedded")
CONFTEST = """\
def pytest_addoption(parser):
    parser.addoption("--target", default="target.json")
    parser.addoption("--config", default="config.yml")
    parser.addoption("--release", default="")
"""
CONFTEST_TEST = """\
def test_options_are_the_projects(request):
    assert request.config.getoption("--target") == "staging.json"
    assert request.config.getoption("--config") == "ci.yml"
    assert request.config.getoption("--release") == "7"
"""


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    dist = tmp_path_factory.mktemp("dist")
    build(dist)
    environment = fresh_venv(dist, *BESIDE)
    yield environment
    environment.remove()


@pytest.fixture
def django_project(tmp_path: Path) -> Path:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "__init__.py").write_text("")
    (tmp_path / "proj" / "settings.py").write_text(DJANGO_SETTINGS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = proj.settings\npythonpath = .\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_models.py").write_text(DJANGO_TESTS)
    return tmp_path


@pytest.fixture
def conftest_project(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_options.py").write_text(CONFTEST_TEST)
    return tmp_path


def _without_us(guest: Installed, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return guest.run("pytest", "-p", "no:postdeploy", *args, cwd=cwd)


def test_a_django_projects_tests_use_pytest_djangos_fixtures(guest: Installed, django_project: Path):
    done = check(guest.run("pytest", "-p", "no:cacheprovider", "--migrations", cwd=django_project))
    assert re.search(r"\b2 passed\b", done.stdout), done.stdout
    assert "postdeploy" not in done.stdout.replace("plugins:", "").split("collected")[1]
    fixtures = check(guest.run("pytest", "--fixtures", "-v", cwd=django_project)).stdout
    assert re.search(r"^settings \[session scope\]|^settings -- .*pytest_django", fixtures, re.M), fixtures
    assert "site-packages/postdeploy" not in fixtures


def test_a_conftest_with_the_same_option_names_runs_unchanged(guest: Installed, conftest_project: Path):
    args = ("-p", "no:cacheprovider", "--target", "staging.json", "--config", "ci.yml", "--release", "7")
    done = check(guest.run("pytest", *NO_EMBEDDED, *args, cwd=conftest_project))
    assert re.search(r"\b1 passed\b", done.stdout), done.stdout
    # Beside pytest-embedded the clash is theirs: the same exit whether postdeploy is installed or not.
    clash = guest.run("pytest", *args, cwd=conftest_project)
    assert clash.returncode != 0 and "--target" in clash.stderr + clash.stdout
    assert clash.returncode == _without_us(guest, *args, cwd=conftest_project).returncode


@pytest.mark.parametrize("where", ["empty", "django", "conftest"])
@pytest.mark.parametrize("what", ["--help", "--version", "--markers", "--fixtures", "--collect-only"])
def test_pytests_own_commands_work_as_without_us(guest: Installed, tmp_path: Path, where: str, what: str,
                                                 request: pytest.FixtureRequest):
    folder = tmp_path if where == "empty" else request.getfixturevalue(f"{where}_project")
    args = ("-p", "no:cacheprovider", *(NO_EMBEDDED if where == "conftest" else ()), what)
    done = guest.run("pytest", *args, cwd=folder)
    alone = _without_us(guest, *args, cwd=folder)
    assert done.returncode == alone.returncode, done.stdout + done.stderr
    assert "Traceback (most recent call last)" not in done.stdout + done.stderr
    if what == "--help":
        assert done.returncode == 0
        assert re.search(r"^postdeploy: .*\n  --postdeploy-target", done.stdout, re.M), done.stdout
    else:
        assert "site-packages/postdeploy/" not in done.stdout + done.stderr, done.stdout


def test_the_demo_signs_off_from_an_empty_folder_beside_them(guest: Installed, tmp_path: Path):
    done = guest.run("pytest", "-m", "post_deploy", "--postdeploy-target", "demo", cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - "), output


def test_no_popular_plugin_registers_an_option_of_the_suite(guest: Installed, tmp_path: Path,
                                                            django_project: Path):
    guest.pip(*MOST_USED)
    # pytest-embedded and pytest-repeat both claim --count: their clash, with or without us.
    clash = guest.run("pytest", "--help", cwd=tmp_path)
    assert "--count" in clash.stderr and clash.returncode == _without_us(guest, "--help", cwd=tmp_path).returncode
    theirs = check(_without_us(guest, *NO_EMBEDDED, "--help", cwd=tmp_path)).stdout
    claimed = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", theirs))
    ours = set(re.findall(r"(?<![\w-])--postdeploy-[\w-]+",
                          check(guest.run("pytest", *NO_EMBEDDED, "--help", cwd=tmp_path)).stdout))
    assert len(ours) >= 15, ours
    assert not claimed & ours
    assert not any(option.startswith("--postdeploy") for option in claimed), claimed
    # With all of them installed, a Django project still runs and pytest --help still works there.
    check(guest.run("pytest", *NO_EMBEDDED, "--help", cwd=django_project))
    check(guest.run("pytest", *NO_EMBEDDED, "-p", "no:cacheprovider", "-p", "no:randomly", cwd=django_project))
