"""The CI examples in docs/ci/, for the application's repository: each parsed as YAML, its install
pinned to this version, its baseline and sign-off commands run as written (plus --target demo, in
place of staging) from a checkout of an application (postdeploy.toml and prisma/migrations), as the
CI runner would run them. The package itself is the installed one."""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
from pathlib import Path

import tomllib

import yaml
from conftest import suite_environ
from test_report_attach import SECRET, TicketService

from postdeploy import reference

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "docs" / "ci"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def checkout(tmp_path: Path, backups: str) -> Path:
    """What actions/checkout or a GitLab runner leaves: an application's repository, with its
    prisma/migrations and the postdeploy.toml that names them (relative to the file) and its backups."""
    folder = tmp_path / "checkout"
    shutil.copytree(reference.MIGRATIONS_DIR, folder / "prisma" / "migrations")
    trigger = reference.TRIGGER_SQL_PATH.relative_to(reference.MIGRATIONS_DIR).as_posix()
    (folder / "postdeploy.toml").write_text(
        f'[migration]\nfolder = "prisma/migrations"\nextra_sql = ["{trigger}"]\n\n{backups}')
    (folder / "package.json").write_text('{"name": "inventory", "private": true}\n')  # a Node application
    return folder


def pinned(install: str, version: str) -> None:
    """The install line pins postdeploy to a version: this one."""
    assert install.strip() == 'pip install --quiet "postdeploy==$POSTDEPLOY_VERSION"', install
    assert version == VERSION


def environ(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in suite_environ().items() if not k.startswith(("GITHUB_", "CHANGE_TICKET"))}
    return base | extra


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # bash -e, as both runners run a script step; staging is a test database and the reference app.
    return subprocess.run(["bash", "-e", "-c", f"{command} -p no:cacheprovider"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def staging(server, healthy_url: str, reference_app) -> dict[str, str]:
    """The variables the runner takes from the environment's secrets: the database and the app."""
    deployment = reference_app(healthy_url)
    return {"DATABASE_URL": healthy_url, "DEFAULT_ORG_ID": reference.DEFAULT_ORG_ID, **deployment.env}


def test_github_actions_workflow(tmp_path: Path, server, healthy_url, reference_app):
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true
    assert "deployment" in triggers and "deployment_status" in triggers
    baseline, job = workflow["jobs"]["baseline"], workflow["jobs"]["signoff"]
    assert "'deployment'" in baseline["if"] and "'deployment_status'" in job["if"] and "staging" in job["if"]
    before = {step.get("name"): step for step in baseline["steps"]}
    steps = {step.get("name"): step for step in job["steps"]}
    pinned(before["install"]["run"], workflow["env"]["POSTDEPLOY_VERSION"])
    pinned(steps["install"]["run"], workflow["env"]["POSTDEPLOY_VERSION"])
    # The snapshot taken before the deploy is the one the sign-off compares with.
    kept, restored = before["keep the baseline for the sign-off"], steps["restore the baseline"]
    assert kept["with"] == restored["with"]
    (capture,) = [line for line in before["baseline"]["run"].splitlines() if line.startswith("pytest ")]
    (command,) = [line for line in steps["sign off"]["run"].splitlines() if line.startswith("pytest ")]
    assert "-m baseline" in capture and "-m post_deploy" in command and "--report-dir reports" in command
    assert steps["publish JUnit"]["if"] == "always()" and steps["keep the report folder"]["if"] == "always()"
    assert steps["keep the report folder"]["with"]["path"] == "reports/"
    # Secrets come from the repository's secrets, never written in the file.
    assert job["env"]["DATABASE_URL"] == baseline["env"]["DATABASE_URL"] == "${{ secrets.STAGING_DATABASE_URL }}"

    github = TicketService("github")
    try:
        summary = tmp_path / "summary.md"
        env = environ({
            "RELEASE_VERSION": "2024.03.01", "CHANGE_TICKET": "acme/inventory#42", "GITHUB_TOKEN": SECRET,
            "GITHUB_API_URL": github.url, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_REPOSITORY": "acme/inventory",
            "GITHUB_RUN_ID": "7",
        } | staging(server, healthy_url, reference_app))
        cwd = checkout(tmp_path, server.backup_config)
        captured = run(capture, cwd, env)
        assert captured.returncode == 0, captured.stdout + captured.stderr
        assert (cwd / kept["with"]["path"] / "baseline.json").is_file()
        done = run(command, cwd, env)
    finally:
        github.stop()
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - ")
    junits = glob.glob(steps["publish JUnit"]["with"]["report_paths"], root_dir=cwd)
    newest = max(p for p in (cwd / "reports").iterdir() if p.is_dir())
    assert f"reports/{newest.name}/junit.xml" in junits
    signoff = json.loads((newest / "sign-off.json").read_text())
    assert signoff["release"] == "2024.03.01"
    outcomes = {c["name"]: c["outcome"] for c in signoff["criteria"]}
    # The application's own migration folder and the baseline from before the deploy were both used.
    assert outcomes["test_schema_matches_release"] == "passed" and outcomes["test_no_rows_lost"] == "passed", outcomes
    assert summary.read_text().startswith("## ✅ SIGN-OFF: GO")
    (comment,) = github.seen
    assert comment.path == "/repos/acme/inventory/issues/42/comments"
    assert SECRET not in output


def test_gitlab_ci_jobs_fail_the_pipeline_on_no_go(tmp_path: Path, server, healthy_url, reference_app):
    pipeline = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    baseline, job = pipeline["postdeploy_baseline"], pipeline["postdeploy_signoff"]
    stages = pipeline["stages"]
    assert stages.index(baseline["stage"]) < stages.index("deploy") < stages.index(job["stage"])
    assert job["needs"] == ["deploy_staging", "postdeploy_baseline"]
    assert baseline["artifacts"]["paths"] == ["baseline/"]
    assert job["artifacts"]["when"] == "always" and "reports/" in job["artifacts"]["paths"]
    (install,) = [line for line in job["script"] if line.startswith("pip ")]
    pinned(install, pipeline["variables"]["POSTDEPLOY_VERSION"])
    (capture,) = [line for line in baseline["script"] if line.startswith("pytest ")]
    (command,) = [line for line in job["script"] if line.startswith("pytest ")]
    predefined = {"CI_COMMIT_TAG": "2024.03.01", "CI_COMMIT_SHORT_SHA": "0a1b2c3d", "STAGING_CHANGE_TICKET": "CHG0030001"}
    # GitLab expands $VARIABLES in `variables:` before the script runs.
    variables = {k: re.sub(r"\$(\w+)", lambda m: predefined.get(m[1], ""), v) for k, v in job["variables"].items()}

    cwd = checkout(tmp_path, server.backup_config)
    captured = run(capture, cwd, environ(predefined | {"DATABASE_URL": healthy_url}))
    assert captured.returncode == 0, captured.stdout + captured.stderr
    healthy = run(command, cwd, environ(predefined | variables | staging(server, healthy_url, reference_app)))
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    faulty_app = reference_app(healthy_url, {"POSTDEPLOY_APP_FAULT": "log_errors"})
    faulty = run(command, cwd, environ(predefined | variables | staging(server, healthy_url, reference_app)
                                       | faulty_app.env))
    output = faulty.stdout + faulty.stderr
    assert faulty.returncode == 1, output  # non-zero: the job, and the pipeline, fail
    assert output.rstrip().splitlines()[-1].startswith("SIGN-OFF: NO-GO - ")
    junits = glob.glob(job["artifacts"]["reports"]["junit"], root_dir=cwd)
    signoffs = [json.loads(p.read_text()) for p in (cwd / "reports").glob("*/sign-off.json")]
    releases = {s["release"] for s in signoffs if any(c["name"] == "test_no_rows_lost" for c in s["criteria"])}
    assert len(junits) == 3 and releases == {"2024.03.01"}  # the baseline's run, then the two sign-offs
