"""A fleet: many databases signed off in one run (--postdeploy-targets FILE), shards and `postdeploy merge`.

Real runs of the suite on real servers: reference deployments copied from the healthy template,
one with a fault of the catalogue, one that nothing answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import EMBEDDED_ONLY, ROOT, suite_environ
from postdeploy.data.baseline import capture_to_file
from postdeploy.fleet.members import merged, with_database
from postdeploy.fleet.resolve import Resolver
from postdeploy.fleet.targets import TargetsFile
from postdeploy.fleet.shard import parse_shard, shard_of
from postdeploy.reference import DEFAULT_ORG_ID, apply_fault
from postdeploy.signoff.settings import ConfigError, Settings
from postdeploy.targets import Target

SECRET = "s3cret-fleet-pw"
NOWHERE = f"postgresql://postgres:{SECRET}@127.0.0.1:1/nowhere"  # nothing listens on port 1
# A database-only gate: the reference app, its log and alert routes are not part of these runs.
DATABASE_ONLY = '[app]\nenabled = false\n[logs]\nenabled = false\n[alerting]\nenabled = false\n'
TARGET_LINE = re.compile(r"^TARGET (\S+): (GO|NO-GO|PARTIAL GO) - (.*)$", re.M)


def fleet_files(tmp_path: Path, server, targets: dict[str, str], extra: str = "") -> tuple[Path, Path, dict[str, str]]:
    """(targets file, shared config, environment): each target's URL in a variable of its own, its
    baseline captured now."""
    config = tmp_path / "shared.toml"
    config.write_text(server.backup_config + server.release_config + DATABASE_ONLY)
    env = {"DEFAULT_ORG_ID": DEFAULT_ORG_ID}
    entries = []
    for name, url in targets.items():
        variable = f"FLEET_{name.upper()}_URL"
        env[variable] = url
        entry = f'[[target]]\nname = "{name}"\ndatabase_url_env = "{variable}"\n'
        if url != NOWHERE:
            capture_to_file(url, Settings(), tmp_path / f"baseline-{name}.json")
            entry += f'baseline = "baseline-{name}.json"\n'
        entries.append(entry)
    path = tmp_path / "fleet.toml"
    path.write_text("\n".join(entries) + extra)
    return path, config, env


def verdicts(output: str) -> dict[str, tuple[str, str]]:
    return {name: (verdict, rest) for name, verdict, rest in TARGET_LINE.findall(output)}


def report_texts(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.iterdir() if p.suffix in (".html", ".md", ".json", ".xml"))


@EMBEDDED_ONLY
def test_fleet_signs_off_each_target_and_the_run(server, healthy_url, run_suite, tmp_path):
    faulty = server.create_database(f"f{uuid.uuid4().hex[:8]}", template="healthy")
    apply_fault(faulty, "ledger_tenant_mismatch")
    targets = {"eu": healthy_url, "us": server.create_database(f"u{uuid.uuid4().hex[:8]}", template="healthy"),
               "leaky": faulty, "gone": NOWHERE}
    # A target whose own configuration is invalid: NO-GO in one line; the others still run.
    extra = '\n[[target]]\nname = "odd"\ndatabase_url_env = "FLEET_EU_URL"\nconfig = { tenancy = { tables = 5 } }\n'
    path, config, env = fleet_files(tmp_path, server, targets, extra)
    run = run_suite("-m", "post_deploy", "--postdeploy-targets", str(path), "--postdeploy-config", str(config), "-n", "2", "-v", env=env)
    output = run.output
    assert run.exit_code == 1, output
    lines = output.rstrip().splitlines()
    assert lines[-1] == "SIGN-OFF: NO-GO - 2 of 5 targets GO", output
    found = verdicts(output)
    assert [line.split(":")[0] for line in lines[-6:-1]] == [f"TARGET {n}" for n in ("eu", "us", "leaky", "gone", "odd")]
    assert found["eu"][0] == found["us"][0] == "GO", output
    assert found["leaky"][0] == "NO-GO" and "test_tenant_consistent_along_foreign_keys" in found["leaky"][1]
    assert found["gone"] == ("NO-GO", found["gone"][1]) and found["gone"][1].startswith("unreachable: ")
    assert "FLEET_GONE_URL" in found["gone"][1]
    assert found["odd"][0] == "NO-GO" and found["odd"][1].startswith("invalid configuration: ")
    assert "tenancy.tables" in found["odd"][1]
    # Each criterion once per target, named test_x[target]; a worker takes whole targets.
    workers: dict[str, set[str]] = {}
    for worker, name in re.findall(r"^\[(gw\d+)\] \[\s*\d+%\] [A-Z]+ \S+::test_\w+\[(\w+)\]@", output, re.M):
        workers.setdefault(name, set()).add(worker)
    assert set(workers) == {"eu", "us", "leaky"} and all(len(w) == 1 for w in workers.values()), workers

    folder = run.folder
    document = run.signoff
    assert document["kind"] == "fleet" and document["verdict"] == "NO-GO"
    assert [row["target"] for row in document["matrix"]] == ["eu", "us", "leaky", "gone", "odd"]
    leaky = next(row for row in document["matrix"] if row["target"] == "leaky")
    assert leaky["Tenant isolation verified"] == "NO-GO" and leaky["All migrations completed successfully"] == "GO"
    eu = next(t for t in document["targets"] if t["target"] == "eu")
    assert len(eu["criteria"]) == 40 and all(not c["name"].endswith("]") for c in eu["criteria"])
    # One ledger pass for the target, which each of its ledger criteria used.
    passes = [json.dumps(c["shared_pass"], sort_keys=True) for c in eu["criteria"] if c["shared_pass"]]
    assert len(passes) >= 4 and len(set(passes)) == 1, passes
    html = (folder / "sign-off.html").read_text()
    assert 'id="fleet-matrix"' in html and html.index("fleet-matrix") < html.index('id="target-eu"')
    markdown = (folder / "sign-off.md").read_text()
    assert markdown.startswith("## ❌ SIGN-OFF: NO-GO - 2 of 5 targets GO") and "| leaky | ❌ NO-GO |" in markdown
    suites = {s.get("name"): s for s in ET.parse(folder / "junit.xml").getroot().iter("testsuite")}
    assert list(suites) == ["eu", "us", "leaky", "gone", "odd"]
    assert suites["eu"].get("tests") == "40" and suites["leaky"].get("failures") == "1"
    assert suites["gone"].get("failures") == "1"
    # No URL, no password: not on the terminal, not in any file of the report.
    for text in (output, report_texts(folder), report_texts(run.report_dir)):
        assert SECRET not in text and "postgresql://" not in text
    # The history keeps each target's runs apart.
    history = (run.report_dir / "history.html").read_text()
    assert all(f"<td>{name}</td>" in history for name in ("eu", "us", "leaky", "gone", "odd"))


@EMBEDDED_ONLY
def test_shards_merged_give_the_single_runs_verdicts(server, healthy_url, run_suite, tmp_path):
    faulty = server.create_database(f"f{uuid.uuid4().hex[:8]}", template="healthy")
    apply_fault(faulty, "ledger_tenant_mismatch")
    targets = {f"t{i}": server.create_database(f"s{i}{uuid.uuid4().hex[:6]}", template="healthy") for i in range(1, 5)}
    targets |= {"leaky": faulty, "gone": NOWHERE}
    path, config, env = fleet_files(tmp_path, server, targets)
    args = ("-m", "post_deploy and (tenancy or migration or data)", "--postdeploy-targets", str(path), "--postdeploy-config", str(config))
    single = run_suite(*args, env=env, reports="single")
    assert single.exit_code == 1, single.output
    shards = [run_suite(*args, "--postdeploy-shard", f"{k}/3", env=env, reports=f"shard{k}") for k in (1, 2, 3)]
    shard_targets = [set(verdicts(s.output)) for s in shards]
    assert sorted(n for names in shard_targets for n in names) == sorted(targets)  # each target in one shard
    out = tmp_path / "merged"
    done = postdeploy("merge", *(str(s.folder) for s in shards), "--out", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    assert verdicts(done.stdout) == verdicts(single.output)
    assert done.stdout.rstrip().splitlines()[-1] == single.output.rstrip().splitlines()[-1] == \
        "SIGN-OFF: NO-GO - 0 of 6 targets GO, 4 PARTIAL GO"  # -m left out five success criteria
    merged_document = json.loads((out / "sign-off.json").read_text())
    assert merged_document["matrix"] == single.signoff["matrix"]
    suites = [s.get("name") for s in ET.parse(out / "junit.xml").getroot().iter("testsuite")]
    assert suites == list(targets)

    # Refused: an overlap, a missing shard, different releases.
    again = postdeploy("merge", str(shards[0].folder), str(shards[0].folder), "--out", str(tmp_path / "m2"))
    assert again.returncode == 4 and "shards must not overlap" in again.stderr
    partial = postdeploy("merge", str(shards[0].folder), str(shards[1].folder), "--out", str(tmp_path / "m3"))
    assert partial.returncode == 4 and "in no folder" in partial.stderr
    other = run_suite(*args, "--postdeploy-shard", "3/3", "--postdeploy-release", "2099.01.01", env=env, reports="other")
    mixed = postdeploy("merge", str(shards[0].folder), str(shards[1].folder), str(other.folder), "--out", str(tmp_path / "m4"))
    assert mixed.returncode == 4 and "different releases" in mixed.stderr
    assert len(mixed.stderr.strip().splitlines()) == 1


@EMBEDDED_ONLY
def test_database_pattern_expands_to_every_matching_database(server, run_suite, tmp_path):
    tenants = [f"{server.prefix}tenant_{letter}" for letter in "abcde"]
    for name in tenants:
        server.create_database(name.removeprefix(server.prefix), template="healthy")
    server.create_database("tenantless", template="healthy")  # does not match
    config = tmp_path / "shared.toml"
    config.write_text(server.backup_config + DATABASE_ONLY)
    path = tmp_path / "fleet.toml"
    path.write_text(f'[[target]]\ndatabase_url_env = "TENANTS_SERVER"\ndatabase_pattern = "{server.prefix}tenant\\\\_%"\n')
    run = run_suite("-m", "post_deploy and migration", "-k", "test_no_failed_migration", "--postdeploy-targets", str(path),
                    "--postdeploy-config", str(config), env={"TENANTS_SERVER": server.url("postgres")})
    assert run.exit_code == 7, run.output  # one criterion selected: a partial GO at best
    assert list(verdicts(run.output)) == tenants
    assert run.output.rstrip().splitlines()[-1] == "SIGN-OFF: PARTIAL GO - 0 of 5 targets GO, 5 PARTIAL GO"
    assert sorted(re.findall(r"test_no_failed_migration\[(\S+?)\]", json.dumps(run.signoff))) == tenants


def postdeploy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "postdeploy.cli", *args], cwd=ROOT, env=suite_environ(),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("text", "message"), [
    ('[[target]]\nname = "a"\n', "give exactly one of database_url_env"),
    ('[[target]]\nname = "a b"\ndatabase_url_env = "X"\n', "may hold only letters"),
    ('[[target]]\nname = "a"\ndatabase_url_env = "X"\nurl = "y"\n', "target[1].url: unknown key"),
    ('[[target]]\nname = "a"\ndatabase_url_env = "X"\n[[target]]\nname = "a"\ndatabase_url_env = "Y"\n', "given twice"),
    ("title = 'no targets'\n", "no [[target]] table"),
    ("[[target]\n", "not valid TOML"),
], ids=["no-url", "bad-name", "unknown-key", "twice", "no-target", "toml"])
def test_a_bad_targets_file_is_one_line_and_exit_4(text, message, tmp_path, run_suite):
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    run = run_suite("-m", "post_deploy", "--postdeploy-targets", str(path))
    assert run.exit_code == 4, run.output
    (error,) = [line for line in run.output.splitlines() if line.startswith("ERROR: ")]
    assert message in error and str(path) in error
    assert "Traceback" not in run.output


def test_shard_needs_a_fleet_and_a_valid_slice(tmp_path, run_suite):
    run = run_suite("-m", "post_deploy", "--postdeploy-shard", "1/2")
    assert run.exit_code == 4 and "--postdeploy-shard needs a fleet" in run.output
    path = tmp_path / "fleet.toml"
    path.write_text('[[target]]\nname = "a"\ndatabase_url_env = "X"\n')
    run = run_suite("-m", "post_deploy", "--postdeploy-targets", str(path), "--postdeploy-shard", "3/2")
    assert run.exit_code == 4 and "must be K/N with 1 <= K <= N" in run.output


def test_shards_are_stable_slices_by_name():
    names = [f"tenant_{i:03d}" for i in range(300)]
    before = {n: shard_of(n, 4) for n in names}
    assert set(before.values()) == {1, 2, 3, 4}
    assert all(100 * 0.5 < list(before.values()).count(k) * 4 / 3 < 100 * 1.5 for k in (1, 2, 3, 4))  # even-ish
    # Adding targets moves none of the others; a fifth runner takes about a fifth of them, from every shard.
    assert {n: shard_of(n, 4) for n in names[:150]} == {n: before[n] for n in names[:150]}
    moved = [n for n in names if shard_of(n, 5) != before[n]]
    assert all(shard_of(n, 5) == 5 for n in moved) and 30 < len(moved) < 90
    assert str(parse_shard(" 2/4 ")) == "2/4" and parse_shard("2/4").holds(next(n for n in names if before[n] == 2))
    for bad in ("0/4", "5/4", "2", "a/b"):
        with pytest.raises(ConfigError, match="K/N"):
            parse_shard(bad)


def test_a_target_config_is_layered_over_the_shared_one():
    shared = {"tenancy": {"tenant_column": "orgId", "tables": ["A"]}, "backup": {"max_age_hours": 25.0}}
    assert merged(shared, {"tenancy": {"tables": "*"}}) == {
        "tenancy": {"tenant_column": "orgId", "tables": "*"}, "backup": {"max_age_hours": 25.0}}
    assert with_database("postgresql://u:p@h:5/postgres?sslmode=require", "tenant a") == \
        "postgresql://u:p@h:5/tenant%20a?sslmode=require"


def test_a_target_config_cannot_bring_its_own_release(tmp_path):
    """The release (its folder, its schema build) is the run's: a target's config naming another is
    that target's invalid configuration, not silently ignored."""
    entries = {"target": [
        {"name": "a", "database_url": "postgresql://u@h/a", "config": {"migration": {"folder": "elsewhere"}}},
        {"name": "b", "database_url": "postgresql://u@h/b", "config": {"tenancy": {"tables": "*"}}},
    ]}
    resolver = Resolver(TargetsFile.model_validate_json(json.dumps(entries)), tmp_path, {}, Settings(),
                        Target("", ""), tmp_path, tmp_path)
    a, b = resolver.members()
    assert a.problem == "invalid configuration: config of target a: [migration] is the fleet's: set it in the shared configuration"
    assert not b.problem and b.settings.tenancy.tables == "*" and b.target.baseline == str(tmp_path / "reports" / "baseline-b.json")
