"""Fleet benchmark: one fleet run against as many separate single-target runs.

    python -m bench.run --fleet [--url ...] [--postdeploy-targets 50] [--movements 20000] [--rounds 2]
                        [--big-fleet 200] [--reuse] [--database-prefix postdeploy_bench]

On one server, <prefix>_fleet_001 ... are copies (CREATE DATABASE ... TEMPLATE) of one reference
deployment of --movements movements, each with its own baseline. Each round runs, in a rotated
order (paired and interleaved: the shared machine's noise falls on all alike):

- the fleet run, `--postdeploy-targets fleet.toml`, `-n 0` and `-n 2`, a fresh pytest process each;
- the separate runs: one pytest process per target (DATABASE_URL, its baseline), in sequence.

All sign off the same criteria (bench.run's selection). Then a fleet of --big-fleet targets runs
once (`-n 2`), its time recorded. It prints medians with [min-max], the ratio fleet / separate
(goal: <= 0.35) and the peak RSS of each contender's largest process (goal: < 300 MB), as
Markdown; results go to reports/bench/fleet/.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from bench.run import ROOT, SELECTION, Contender, db_url, ensure_loaded

GOAL_RATIO, GOAL_RSS_MB = 0.35, 300


def copies(admin: str, template: str, prefix: str, count: int, reuse: bool) -> list[tuple[str, str]]:
    """(name, URL) of `count` copies of the template database."""
    names = [f"{prefix}_{i:03d}" for i in range(1, count + 1)]
    with psycopg.connect(admin, autocommit=True) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                                   (f"{prefix}\\_%",))}
        for name in names:
            if reuse and name in existing:
                continue
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    return [(name, db_url(admin, name)) for name in names]


def _environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_REPLICA_URL", "PYTHONDONTWRITEBYTECODE")}
    return env | {"DEFAULT_ORG_ID": "org_default"}


def _pytest(reports: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"),
            "--rootdir", str(ROOT), f"--postdeploy-report-dir={reports}", "-q", str(ROOT / "verifications"), *args]


def fleet_file(work: Path, targets: list[tuple[str, str]], baselines: Path) -> tuple[Path, dict[str, str]]:
    """The targets file (URLs in variables) and the variables."""
    entries, env = [], {}
    for name, url in targets:
        variable = f"BENCH_{name.upper()}_URL"
        env[variable] = url
        entries.append(f'[[target]]\nname = "{name}"\ndatabase_url_env = "{variable}"\n'
                       f'baseline = "{baselines / f"baseline-{name}.json"}"\n')
    path = work / f"fleet-{len(targets)}.toml"
    path.write_text("\n".join(entries))
    return path, env


def contenders(work: Path, targets: list[tuple[str, str]], baselines: Path) -> list[Contender]:
    path, variables = fleet_file(work, targets, baselines)
    env = _environ() | variables
    made = []
    for workers in ("0", "2"):
        reports = work / f"reports-fleet-n{workers}"
        reports.mkdir(parents=True, exist_ok=True)
        made.append(Contender(f"fleet -n {workers}", _pytest(reports, "-m", SELECTION, "--postdeploy-targets", str(path),
                                                             "-n", workers), env, reports))
    # The separate runs: one process per target, in sequence, as a script (MEASURE times the whole).
    reports = work / "reports-separate"
    reports.mkdir(parents=True, exist_ok=True)
    lines = ["set -u", "status=0"]
    for name, url in targets:
        argv = _pytest(reports, "-m", SELECTION, f"--postdeploy-baseline={baselines / f'baseline-{name}.json'}")
        lines.append(f"DATABASE_URL={shlex.quote(url)} {shlex.join(argv)} > /dev/null || status=$?")
    lines.append("exit $status  # the last NO-GO's, as the fleet's: every run goes on")
    script = work / "separate.sh"
    script.write_text("\n".join(lines) + "\n")
    made.append(Contender(f"{len(targets)} separate runs", ["bash", str(script)], _environ()))
    return made


def capture_baselines(work: Path, targets: list[tuple[str, str]], baselines: Path) -> None:
    path, variables = fleet_file(work, targets, baselines)
    reports = work / "reports-baseline"
    reports.mkdir(parents=True, exist_ok=True)
    captured = Contender("baselines", _pytest(reports, "-m", "baseline", "--postdeploy-targets", str(path)),
                         _environ() | variables, reports).run()
    if captured.code != 0:
        raise SystemExit(f"the baselines' capture failed (exit {captured.code})")


def bench_fleet(admin: str, prefix: str, count: int, movements: int, rounds: int, big: int, reuse: bool,
                work: Path) -> dict:
    template_url, load_s = ensure_loaded(admin, f"{prefix}_fleet_template", movements, reuse)
    template = template_url.rsplit("/", 1)[-1]
    work.mkdir(parents=True, exist_ok=True)
    targets = copies(admin, template, f"{prefix}_fleet", max(count, big), reuse)
    baselines = work / "baselines"
    capture_baselines(work, targets, baselines)
    runs = contenders(work, targets[:count], baselines)
    for c in runs:  # warm-up: page cache, bytecode
        c.run()
    for r in range(rounds):
        for c in runs[r % len(runs):] + runs[: r % len(runs)]:
            c.samples.append(c.run())
    result: dict = {"targets": count, "movements": movements, "rounds": rounds, "load_s": load_s}
    for c in runs:
        result[c.name] = {"wall": [s.wall for s in c.samples], "rss_mb": max(s.rss_mb for s in c.samples),
                          "exit": sorted({s.code for s in c.samples})}
    if big:
        folder = work / f"big-{big}"
        folder.mkdir(exist_ok=True)
        large = next(c for c in contenders(folder, targets[:big], baselines) if c.name == "fleet -n 2")
        sample = large.run()
        result[f"fleet of {big}, -n 2"] = {"wall": [sample.wall], "rss_mb": sample.rss_mb, "exit": [sample.code]}
    return result


def report(r: dict) -> str:
    separate = f"{r['targets']} separate runs"
    med = {k: statistics.median(v["wall"]) for k, v in r.items() if isinstance(v, dict)}
    rows = [f"### A fleet of {r['targets']} targets x {r['movements']:,} movements ({r['rounds']} paired rounds)", "",
            "| contender | wall, median [min-max] | peak RSS | exit |", "|---|---:|---:|---|"]
    for name, values in r.items():
        if isinstance(values, dict):
            wall = values["wall"]
            rows.append(f"| {name} | {statistics.median(wall):.2f} s [{min(wall):.2f}-{max(wall):.2f}] |"
                        f" {values['rss_mb']} MB | {values['exit']} |")
    rows += ["", *(f"- {name} / separate runs: **{med[name] / med[separate]:.2f}** (goal <= {GOAL_RATIO})"
                   for name in ("fleet -n 0", "fleet -n 2")),
             f"- peak RSS under {GOAL_RSS_MB} MB: {all(v['rss_mb'] < GOAL_RSS_MB for v in r.values() if isinstance(v, dict))}"]
    return "\n".join(rows)


def main(args) -> int:  # type: ignore[no-untyped-def]
    work = Path(args.work) / "fleet"
    result = bench_fleet(args.url, args.database_prefix, args.targets, args.movements, args.rounds, args.big_fleet,
                         args.reuse, work)
    (work / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print(report(result), flush=True)
    return 0

