"""The CI gate examples in docs/ci/: each parsed as YAML, its sign-off command run as written
(plus --target demo, in place of staging) from a checkout, as the CI runner would run it."""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import suite_environ
from test_report_attach import SECRET, TicketService

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "docs" / "ci"


def checkout(tmp_path: Path) -> Path:
    """What actions/checkout or a GitLab runner leaves: the project's files (the package itself is
    the installed one)."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    for name in ("pyproject.toml", "conftest.py"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "verifications", folder / "verifications", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def environ(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in suite_environ().items() if not k.startswith(("GITHUB_", "CHANGE_TICKET"))}
    return base | extra


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # bash -e, as both runners run a script step; the only change: the demo instead of staging.
    return subprocess.run(["bash", "-e", "-c", f"{command} --target demo -p no:cacheprovider"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_github_actions_workflow(tmp_path: Path):
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    job = workflow["jobs"]["signoff"]
    steps = {step.get("name"): step for step in job["steps"]}
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true
    assert "deployment_status" in triggers and "staging" in job["if"]
    (command,) = [line for line in steps["sign off"]["run"].splitlines() if line.startswith("pytest ")]
    assert "-m post_deploy" in command and "--report-dir reports" in command
    assert steps["publish JUnit"]["if"] == "always()" and steps["keep the report folder"]["if"] == "always()"
    assert steps["keep the report folder"]["with"]["path"] == "reports/"
    # Secrets come from the repository's secrets, never written in the file.
    assert job["env"]["DATABASE_URL"] == "${{ secrets.STAGING_DATABASE_URL }}"

    github = TicketService("github")
    try:
        summary = tmp_path / "summary.md"
        env = environ({
            "RELEASE_VERSION": "2024.03.01", "CHANGE_TICKET": "acme/inventory#42", "GITHUB_TOKEN": SECRET,
            "GITHUB_API_URL": github.url, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_REPOSITORY": "acme/inventory",
            "GITHUB_RUN_ID": "7",
        })
        cwd = checkout(tmp_path)
        done = run(command, cwd, env)
    finally:
        github.stop()
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - ")
    (junit,) = glob.glob(steps["publish JUnit"]["with"]["report_paths"], root_dir=cwd)
    (folder,) = [p for p in (cwd / "reports").iterdir() if p.is_dir()]
    assert junit == f"reports/{folder.name}/junit.xml"
    assert json.loads((folder / "sign-off.json").read_text())["release"] == "2024.03.01"
    assert summary.read_text().startswith("## ✅ SIGN-OFF: GO")
    (comment,) = github.seen
    assert comment.path == "/repos/acme/inventory/issues/42/comments"
    assert SECRET not in output


def test_gitlab_ci_job_fails_the_pipeline_on_no_go(tmp_path: Path):
    pipeline = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    job = pipeline["signoff_staging"]
    assert job["stage"] in pipeline["stages"] and job["needs"] == ["deploy_staging"]
    assert job["artifacts"]["when"] == "always" and "reports/" in job["artifacts"]["paths"]
    (command,) = [line for line in job["script"] if line.startswith("pytest ")]
    predefined = {"CI_COMMIT_TAG": "2024.03.01", "CI_COMMIT_SHORT_SHA": "0a1b2c3d", "STAGING_CHANGE_TICKET": "CHG0030001"}
    # GitLab expands $VARIABLES in `variables:` before the script runs.
    variables = {k: re.sub(r"\$(\w+)", lambda m: predefined.get(m[1], ""), v) for k, v in job["variables"].items()}

    cwd = checkout(tmp_path)
    healthy = run(command, cwd, environ(predefined | variables))
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    faulty = run(command, cwd, environ(predefined | variables | {"POSTDEPLOY_APP_FAULT": "log_errors"}))
    output = faulty.stdout + faulty.stderr
    assert faulty.returncode == 1, output  # non-zero: the job, and the pipeline, fail
    assert output.rstrip().splitlines()[-1].startswith("SIGN-OFF: NO-GO - ")
    junits = glob.glob(job["artifacts"]["reports"]["junit"], root_dir=cwd)
    assert len(junits) == 2
    releases = {json.loads(p.read_text())["release"] for p in (cwd / "reports").glob("*/sign-off.json")}
    assert releases == {"2024.03.01"}  # the tag, the demo app's version
