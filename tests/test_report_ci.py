"""The CI examples in docs/ci/, for the application's repository: each parsed as YAML, its install
pinned to this version, its baseline and sign-off commands run as written (plus --postdeploy-target demo, in
place of staging) from a checkout of an application (postdeploy.toml and prisma/migrations), as the
CI runner would run them. The package itself is the installed one."""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import tomllib

import yaml
from conftest import suite_environ
from test_report_attach import SECRET, TicketService

from postdeploy import reference
from conftest import EMBEDDED_ONLY

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


@EMBEDDED_ONLY
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
    assert "-m baseline" in capture and "-m post_deploy" in command and "--postdeploy-report-dir reports" in command
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


@EMBEDDED_ONLY
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


# A fleet across CI runners: each slice (--postdeploy-shard K/N) on a runner of its own, then the merge job.

FLEET_TOML = """[[target]]
name = "eu"
database_url_env = "EU_DATABASE_URL"

[[target]]
name = "us"
database_url_env = "US_DATABASE_URL"

[[target]]
database_url_env = "TENANTS_SERVER_URL"
database_pattern = "{pattern}"
"""


def fleet_checkout(tmp_path: Path, name: str, server, baselines: Path) -> Path:
    """A runner's checkout of an application repository that keeps fleet.toml and its postdeploy.toml."""
    from test_fleet import DATABASE_ONLY

    (tmp_path / name).mkdir()
    cwd = checkout(tmp_path / name, "")
    (cwd / "fleet.toml").write_text(FLEET_TOML.format(pattern=f"{server.prefix}{baselines.parent.name}_tenant\\\\_%"))
    (cwd / "postdeploy.toml").write_text(server.backup_config + server.release_config + DATABASE_ONLY
                                         + '[data]\nbaseline = "baselines/baseline.json"\n')
    shutil.copytree(baselines, cwd / "baselines")
    return cwd


def fleet_environ(server, tmp_path: Path, fault: str = "") -> tuple[dict[str, str], Path]:
    """The fleet's variables (eu, us, two tenants on one server) and the baselines taken before the deploy."""
    from postdeploy.data.baseline import capture_to_file
    from postdeploy.reference import DEFAULT_ORG_ID, apply_fault
    from postdeploy.signoff.settings import Settings

    tag = tmp_path.name[-12:].lower().replace("-", "_")  # this test's databases, apart from another's
    baselines = tmp_path / tag / "baselines"
    baselines.mkdir(parents=True)
    urls = {name: server.create_database(f"{tag}_{name}", template="healthy") for name in ("eu", "us")}
    for letter in "ab":
        name = f"{tag}_tenant_{letter}"
        urls[server.prefix + name] = server.create_database(name, template="healthy")
    for name, url in urls.items():
        capture_to_file(url, Settings(), baselines / f"baseline-{name}.json")
    if fault:
        apply_fault(urls["us"], fault)
    bin_dir = str(Path(sys.executable).parent)  # where pip put pytest and postdeploy
    env = environ({"EU_DATABASE_URL": urls["eu"], "US_DATABASE_URL": urls["us"], "DEFAULT_ORG_ID": DEFAULT_ORG_ID,
                   "TENANTS_SERVER_URL": server.url("postgres"), "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    return env, baselines, list(urls)


def script(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def expected_shard_exit(shard: int, count: int, names: list[str]) -> int:
    """A slice the hash left empty signs off nothing: never a GO (exit 1), the merge decides."""
    from postdeploy.fleet.shard import shard_of

    return 0 if any(shard_of(n, count) == shard for n in names) else 1


@EMBEDDED_ONLY
def test_github_actions_fleet_matrix_and_merge(server, tmp_path: Path):
    workflow = yaml.safe_load((CI / "github-actions-fleet.yml").read_text())
    signoff, merge = workflow["jobs"]["signoff"], workflow["jobs"]["merge"]
    shards = signoff["strategy"]["matrix"]["shard"]
    assert signoff["strategy"]["fail-fast"] is False and int(signoff["env"]["SHARDS"]) == len(shards)
    assert merge["needs"] == "signoff" and merge["if"] == "always()"
    assert all(v.startswith("${{ secrets.") for k, v in signoff["env"].items() if k.endswith("_URL"))
    steps = {step.get("name"): step for step in signoff["steps"]}
    pinned(steps["install"]["run"], workflow["env"]["POSTDEPLOY_VERSION"])
    (command,) = [line for line in steps["sign off a slice"]["run"].splitlines() if line.startswith("pytest ")]
    assert "--postdeploy-targets fleet.toml" in command and "--postdeploy-shard" in command
    keep = steps["keep the slice's report folder"]
    assert keep["if"] == "always()" and keep["with"]["path"] == "reports/"
    merge_steps = {step.get("name") or step["uses"]: step for step in merge["steps"]}
    pinned(merge_steps["install"]["run"], workflow["env"]["POSTDEPLOY_VERSION"])
    download = merge_steps["actions/download-artifact@v4"]["with"]
    (merging,) = [line for line in merge_steps["merge the slices"]["run"].splitlines() if line.startswith("postdeploy ")]

    env, baselines, names = fleet_environ(server, tmp_path)
    env |= {"RELEASE_VERSION": "2024.03.01", "SHARDS": str(len(shards))}
    runner = fleet_checkout(tmp_path, "merge-runner", server, baselines)
    for shard in shards:
        cwd = fleet_checkout(tmp_path, f"runner-{shard}", server, baselines)
        done = script(command.replace("${{ matrix.shard }}", str(shard)), cwd, env)
        assert done.returncode == expected_shard_exit(shard, len(shards), names), done.stdout + done.stderr
        # download-artifact with a pattern: each artifact in a folder named after it
        artifact = keep["with"]["name"].replace("${{ matrix.shard }}", str(shard))
        assert fnmatch.fnmatch(artifact, download["pattern"])
        shutil.copytree(cwd / "reports", runner / download["path"] / artifact)
    done = script(merging, runner, env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.rstrip().splitlines()[-1] == "SIGN-OFF: GO - 4 of 4 targets GO"
    assert sorted(re.findall(r"^TARGET (\S+): GO", output, re.M)) == sorted(names)
    (junit,) = glob.glob(merge_steps["publish JUnit"]["with"]["report_paths"], root_dir=runner)
    assert json.loads((runner / junit).with_name("sign-off.json").read_text())["release"] == "2024.03.01"


@EMBEDDED_ONLY
def test_gitlab_ci_fleet_parallel_and_merge_fail_the_pipeline_on_no_go(server, tmp_path: Path):
    pipeline = yaml.safe_load((CI / "gitlab-ci-fleet.yml").read_text())
    signoff, merge = pipeline["signoff_fleet"], pipeline["merge_fleet"]
    count = signoff["parallel"]
    assert signoff["artifacts"]["when"] == "always" and "reports/" in signoff["artifacts"]["paths"]
    assert merge["needs"] == ["signoff_fleet"] and merge["when"] == "always"
    assert {signoff["stage"], merge["stage"]} <= set(pipeline["stages"])
    for job in (signoff, merge):
        (install,) = [line for line in job["script"] if line.startswith("pip ")]
        pinned(install, pipeline["variables"]["POSTDEPLOY_VERSION"])
    (command,) = [line for line in signoff["script"] if line.startswith("pytest ")]
    (merging,) = [line for line in merge["script"] if line.startswith("postdeploy ")]

    env, baselines, names = fleet_environ(server, tmp_path, fault="ledger_tenant_mismatch")
    env |= {"CI_COMMIT_TAG": "2024.03.01", "RELEASE_VERSION": "2024.03.01", "CI_NODE_TOTAL": str(count)}
    runner = fleet_checkout(tmp_path, "merge-runner", server, baselines)
    for shard in range(1, count + 1):
        cwd = fleet_checkout(tmp_path, f"runner-{shard}", server, baselines)
        done = script(command, cwd, env | {"CI_NODE_INDEX": str(shard)})
        holds_us = expected_shard_exit(shard, count, ["us"]) == 0
        wanted = 1 if holds_us else expected_shard_exit(shard, count, names)
        assert done.returncode == wanted, done.stdout + done.stderr
        shutil.copytree(cwd / "reports", runner / "reports", dirs_exist_ok=True)  # needs: the jobs' artifacts
    done = script(merging, runner, env)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # the merge job, and the pipeline, fail
    assert output.rstrip().splitlines()[-1] == "SIGN-OFF: NO-GO - 3 of 4 targets GO"
    assert re.search(r"^TARGET us: NO-GO - .*test_tenant_consistent_along_foreign_keys", output, re.M)
    (junit,) = glob.glob(merge["artifacts"]["reports"]["junit"], root_dir=runner)
    assert [s.get("name") for s in ET.parse(runner / junit).getroot().iter("testsuite")] == names
