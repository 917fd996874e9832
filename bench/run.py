"""Scale benchmark: the suite's database criteria against the one-pass floor, count(*) and dbt.

    python -m bench.run [--url postgresql://postgres@127.0.0.1:5432/postgres] [--scales 1000000 10000000]
                        [--rounds 3] [--reuse] [--database-prefix postdeploy_bench]
    python -m bench.run --fleet [--postdeploy-targets 50] [--movements 20000] [--big-fleet 200]   (bench/fleet.py)
    python -m bench.run --schemas [--tenant-schemas 1000]   (bench/schemas.py)

For each scale it loads the reference deployment into <prefix>_<scale> (kept; --reuse skips the
load), captures a baseline, warms every contender once, then runs --rounds rounds; each round
runs every contender once, back to back, in a rotated order (paired and interleaved, so that
the shared machine's noise falls on all of them alike):

- the suite's database criteria (`-m "post_deploy and not health and not backup"`, baseline
  given), `-n 0` and `-n 2`, each a fresh pytest process (start-up included);
- the one-pass floor: `SELECT "itemId", "locationId", sum(quantity) ... GROUP BY 1, 2` with the
  suite's work_mem, and `count(*)` of the ledger, each a fresh psql;
- `dbt test` on bench/peer (the same checks as a dbt project), one thread, same work_mem.
  dbt-postgres is installed into its own virtual environment (~/.cache/postdeploy/dbt-venv),
  never into the project's.

It prints medians with [min-max], the ratios suite/floor and dbt/suite, and the peak RSS of
each contender's largest process, as Markdown. Results go to reports/bench/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from postdeploy.signoff.settings import BalanceSettings

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "bench" / "peer"
DBT_VENV = Path(os.environ.get("POSTDEPLOY_DBT_VENV", Path.home() / ".cache" / "postdeploy" / "dbt-venv"))
# dbt-core 1.12 builds a parser wheel fetched from outside the package index at install time: 1.11.
DBT_REQUIREMENTS = ["dbt-postgres==1.11.*", "dbt-core>=1.11,<1.12"]
SELECTION = "post_deploy and not health and not backup"
WORK_MEM = BalanceSettings().work_mem
FLOOR = 'SELECT "itemId", "locationId", sum(quantity) FROM "StockMovement" GROUP BY 1, 2'
COUNT = 'SELECT count(*) FROM "StockMovement"'
# Runs a command, then prints its wall time and the peak RSS of its largest process (KiB).
MEASURE = (
    "import resource, subprocess, sys, time;"
    "t = time.perf_counter(); r = subprocess.run(sys.argv[1:]).returncode;"
    "w = time.perf_counter() - t;"
    "print('BENCH', r, w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
)


def db_url(admin: str, name: str) -> str:
    return urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))


def ensure_loaded(admin: str, name: str, scale: int, reuse: bool) -> tuple[str, float | None]:
    from postdeploy import reference

    url = db_url(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and reuse:
            with psycopg.connect(url) as c:
                loaded = c.execute("SELECT to_regclass('public.\"ReconciliationRun\"') IS NOT NULL").fetchone()[0]
                if loaded:
                    # Keep the heartbeat fresh on a reused database (as the nightly job would).
                    c.execute('UPDATE "ReconciliationRun" SET "startedAt" = "startedAt" + d, "finishedAt" = "finishedAt" + d'
                              ' FROM (SELECT (now() AT TIME ZONE \'UTC\') - interval \'1 hour\' - max("finishedAt") AS d'
                              ' FROM "ReconciliationRun") x')
                    c.commit()
                    return url, None
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    started = time.perf_counter()
    reference.load(url, scale=scale)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # settled visibility map and statistics, as a production database has
    return url, time.perf_counter() - started


def ensure_dbt() -> Path:
    """dbt in its own virtual environment, installed once with pip."""
    dbt = DBT_VENV / "bin" / "dbt"
    if not dbt.exists():
        print(f"installing {', '.join(DBT_REQUIREMENTS)} into {DBT_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DBT_VENV)], check=True)
        subprocess.run([str(DBT_VENV / "bin" / "pip"), "install", "-q", *DBT_REQUIREMENTS], check=True)
    return dbt


@dataclass
class Sample:
    wall: float
    rss_mb: int
    code: int
    folder: Path | None = None


@dataclass
class Contender:
    name: str
    argv: list[str]
    env: dict[str, str]
    reports: Path | None = None  # the pytest runs' report folder
    samples: list[Sample] = field(default_factory=list)

    def run(self) -> Sample:
        before = set(self.reports.iterdir()) if self.reports else set()
        done = subprocess.run([sys.executable, "-c", MEASURE, *self.argv], cwd=ROOT, env=self.env,
                              capture_output=True, text=True)
        line = next((x for x in done.stderr.splitlines() if x.startswith("BENCH ")), None)
        if line is None:
            raise SystemExit(f"{self.name} did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        _, code, wall, rss = line.split()
        folder = None
        if self.reports:
            new = sorted(set(self.reports.iterdir()) - before)
            folder = new[-1] if new else None
        return Sample(float(wall), int(rss) // 1024, int(code), folder)


def _pytest(url: str, reports: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    # Bytecode caches written and read, as on any user's machine (this one sets PYTHONDONTWRITEBYTECODE).
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_REPLICA_URL", "PYTHONDONTWRITEBYTECODE")}
    env |= {"DATABASE_URL": url, "DEFAULT_ORG_ID": "org_default"}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"),
            "--rootdir", str(ROOT), f"--postdeploy-report-dir={reports}", "-q", str(ROOT / "verifications"), *args]
    return argv, env


def _psql(url: str, statement: str) -> tuple[list[str], dict[str, str]]:
    argv = ["psql", "-X", "-q", "-o", "/dev/null", "-d", url, "-c", f"SET work_mem = '{WORK_MEM}'", "-c", statement]
    return argv, dict(os.environ)


def _dbt(url: str, dbt: Path, work: Path) -> tuple[list[str], dict[str, str]]:
    parts = urlsplit(url)
    env = dict(os.environ) | {
        "PEER_HOST": parts.hostname or "127.0.0.1", "PEER_PORT": str(parts.port or 5432),
        "PEER_USER": unquote(parts.username or "postgres"), "PEER_PASSWORD": unquote(parts.password or ""),
        "PEER_DBNAME": parts.path.lstrip("/"),
        "PGOPTIONS": f"-c work_mem={WORK_MEM}",  # the same memory as the suite's pass
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    argv = [str(dbt), "test", "--project-dir", str(PEER), "--profiles-dir", str(PEER), "--threads", "1",
            "--target-path", str(work / "dbt-target"), "--log-path", str(work / "dbt-logs")]
    return argv, env


def contenders(url: str, baseline: Path, work: Path, dbt: Path) -> list[Contender]:
    made = []
    for workers in ("0", "2"):
        reports = work / f"reports-n{workers}"
        reports.mkdir(parents=True, exist_ok=True)
        argv, env = _pytest(url, reports, "-m", SELECTION, f"--postdeploy-baseline={baseline}", "-n", workers)
        made.append(Contender(f"suite -n {workers}", argv, env, reports))
    made.append(Contender("floor", *_psql(url, FLOOR)))
    made.append(Contender("count(*)", *_psql(url, COUNT)))
    made.append(Contender("dbt test", *_dbt(url, dbt, work)))
    return made


def junit_times(folder: Path) -> dict[str, float]:
    root = ET.parse(folder / "junit.xml").getroot()
    # (under -n, an xdist group follows the name after "@")
    return {case.get("name").split("@")[0]: float(case.get("time", 0)) for case in root.iter("testcase")}


def shared_pass(folder: Path) -> float | None:
    criteria = json.loads((folder / "sign-off.json").read_text())["criteria"]
    return next((c["shared_pass"]["seconds"] for c in criteria if c.get("shared_pass")), None)


def bench(admin: str, prefix: str, scale: int, rounds: int, reuse: bool, work: Path, dbt: Path) -> dict:
    url, load_s = ensure_loaded(admin, f"{prefix}_{scale}", scale, reuse)
    work = work / str(scale)
    work.mkdir(parents=True, exist_ok=True)
    baseline = work / "baseline.json"
    argv, env = _pytest(url, work / "reports-baseline", "-m", "baseline", f"--postdeploy-baseline={baseline}")
    (work / "reports-baseline").mkdir(exist_ok=True)
    captured = Contender("baseline", argv, env, work / "reports-baseline").run()
    if captured.code != 0:
        raise SystemExit(f"the baseline capture failed (exit {captured.code})")
    runs = contenders(url, baseline, work, dbt)
    for c in runs:  # warm-up: caches (page cache, bytecode, dbt's partial parse) as in steady use
        c.run()
    for r in range(rounds):
        for c in runs[r % len(runs):] + runs[: r % len(runs)]:
            c.samples.append(c.run())
    result = {"scale": scale, "load_s": load_s, "rounds": rounds, "baseline_s": captured.wall}
    for c in runs:
        result[c.name] = {"wall": [s.wall for s in c.samples], "rss_mb": max(s.rss_mb for s in c.samples),
                          "exit": sorted({s.code for s in c.samples})}
        if c.reports:
            median_run = sorted(c.samples, key=lambda s: s.wall)[len(c.samples) // 2]
            result[c.name]["criteria"] = junit_times(median_run.folder)
            result[c.name]["shared_pass_s"] = [shared_pass(s.folder) for s in c.samples]
    return result


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s [{min(values):.2f}-{max(values):.2f}]"


def report(r: dict) -> str:
    med = {k: statistics.median(r[k]["wall"]) for k in ("suite -n 0", "suite -n 2", "floor", "count(*)", "dbt test")}
    rows = [
        f"### {r['scale']:,} movements ({r['rounds']} paired rounds; "
        + (f"loaded in {r['load_s']:.0f} s)" if r["load_s"] else "database reused)"),
        "",
        "| contender | wall, median [min-max] | peak RSS |",
        "|---|---:|---:|",
    ]
    for name in ("floor", "count(*)", "suite -n 0", "suite -n 2", "dbt test"):
        rows.append(f"| {name} | {_cell(r[name]['wall'])} | {r[name]['rss_mb']} MB |")
    passes = [s for s in r["suite -n 0"]["shared_pass_s"] if s is not None]
    rows += [
        "",
        f"- suite `-n 0` / floor: **{med['suite -n 0'] / med['floor']:.2f}**; suite `-n 0` - floor:"
        f" {med['suite -n 0'] - med['floor']:.2f} s; `-n 2` / `-n 0`: {med['suite -n 2'] / med['suite -n 0']:.2f}",
        f"- dbt test / suite `-n 0`: **{med['dbt test'] / med['suite -n 0']:.2f}**; dbt test / floor:"
        f" {med['dbt test'] / med['floor']:.2f}",
        f"- the shared ledger pass inside the suite (`-n 0`): {_cell(passes) if passes else 'n/a'}",
        f"- exit codes: suite {r['suite -n 0']['exit']} (the HTTP tenancy criteria are blocking skips without"
        f" APP_URL), dbt {r['dbt test']['exit']}",
        "",
        "| criterion (`-n 0`, median run) | s |",
        "|---|---:|",
    ]
    criteria = r["suite -n 0"]["criteria"]
    rows += [f"| {n} | {t:.2f} |" for n, t in sorted(criteria.items(), key=lambda x: -x[1]) if t >= 0.01]
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                   help="an admin URL of the server to create the benchmark databases on")
    p.add_argument("--scales", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reuse", action="store_true", help="reuse <prefix>_<scale> if already loaded")
    p.add_argument("--database-prefix", default="postdeploy_bench", help="benchmark databases are <prefix>_<scale>")
    p.add_argument("--work", default=str(ROOT / "reports" / "bench"), help="where reports and results go")
    fleet = p.add_argument_group("--fleet: one fleet run against separate single-target runs (bench/fleet.py)")
    fleet.add_argument("--fleet", action="store_true", help="run the fleet benchmark instead")
    fleet.add_argument("--postdeploy-targets", type=int, default=50, help="targets of the fleet (default: %(default)s)")
    fleet.add_argument("--movements", type=int, default=20_000, help="ledger rows of each target (default: %(default)s)")
    fleet.add_argument("--big-fleet", type=int, default=200, help="then one run of a fleet this big (0: none)")
    schemas = p.add_argument_group("--schemas: tenant schemas in one catalog pass against schema by schema (bench/schemas.py)")
    schemas.add_argument("--schemas", action="store_true", help="run the schema-per-tenant benchmark instead")
    schemas.add_argument("--tenant-schemas", type=int, default=1_000, help="tenant schemas of 20 tables (default: %(default)s)")
    args = p.parse_args()
    if args.schemas:
        from bench.schemas import main as schemas_main

        return schemas_main(args)
    if args.fleet:
        from bench.fleet import main as fleet_main

        return fleet_main(args)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    dbt = ensure_dbt()
    with tempfile.TemporaryDirectory():
        for scale in args.scales:
            result = bench(args.url, args.database_prefix, scale, args.rounds, args.reuse, work, dbt)
            (work / f"result-{scale}.json").write_text(json.dumps(result, indent=2, default=str))
            print(report(result), flush=True)
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
