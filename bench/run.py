"""Scale benchmark: load the reference deployment at 1M and 10M movements, run every
database criterion, and compare each criterion's time inside the suite with its bare SQL
run alone with psql; report the suite's wall time and the pytest process's peak memory.

    python -m bench.run [--url postgresql://postgres@127.0.0.1:5432/postgres] [--scales 1000000 10000000] [--reuse]

Needs psql on PATH and a PostgreSQL server where it may create databases
(postdeploy_bench_<scale>; kept for --reuse, dropped with --drop).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
MEASURE = (
    "import resource, subprocess, sys, time;"
    "t = time.perf_counter(); r = subprocess.run(sys.argv[1:]).returncode;"
    "w = time.perf_counter() - t;"
    "print('BENCH', r, w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
)


def db_url(admin: str, name: str) -> str:
    return urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))


def ensure_loaded(admin: str, scale: int, reuse: bool) -> tuple[str, float | None]:
    from fixtures import reference

    name = f"postdeploy_bench_{scale}"
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
    return url, time.perf_counter() - started


def pytest_run(url: str, reports: Path, capture: Path | None, *args: str) -> tuple[int, float, int, Path]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env |= {"DATABASE_URL": url, "DEFAULT_ORG_ID": "org_default", "PYTHONPATH": str(ROOT)}
    if capture:
        env["POSTDEPLOY_SQL_CAPTURE"] = str(capture)
    cmd = [sys.executable, "-c", MEASURE, sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
           "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
           f"--report-dir={reports}", "-q", str(ROOT / "verifications"), *args]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    line = next((l for l in done.stderr.splitlines() if l.startswith("BENCH ")), None)
    if line is None or not any(p.is_dir() for p in reports.iterdir()):
        raise SystemExit(f"pytest {' '.join(args)} did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    _, code, wall, rss = line.split()
    folder = sorted(p for p in reports.iterdir() if p.is_dir())[-1]
    return int(code), float(wall), int(rss) // 1024, folder


def junit_times(folder: Path) -> dict[str, float]:
    root = ET.parse(folder / "junit.xml").getroot()
    # (under -n, an xdist group follows the name after "@")
    return {case.get("name").split("@")[0]: float(case.get("time", 0)) for case in root.iter("testcase")}


def psql_times(url: str, capture: Path) -> dict[str, float]:
    """Each criterion's captured statements, replayed alone with psql in one read-only snapshot."""
    statements: dict[str, list[str]] = {}
    for line in capture.read_text().splitlines():
        rec = json.loads(line)
        statements.setdefault(rec["test"], []).append(rec["sql"])
    times = {}
    for test, sqls in statements.items():
        script = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n" + ";\n".join(
            s for s in sqls if not s.lstrip().upper().startswith("SET TRANSACTION")
        ) + ";\nCOMMIT;\n"
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(script)
        started = time.perf_counter()
        subprocess.run(["psql", "-X", "-q", "-o", "/dev/null", "-d", url, "-f", f.name],
                       check=False, capture_output=True)
        times[test] = time.perf_counter() - started
        os.unlink(f.name)
    return times


def bench(admin: str, scale: int, reuse: bool, work: Path) -> dict:
    url, load_s = ensure_loaded(admin, scale, reuse)
    reports = work / f"reports-{scale}"
    reports.mkdir(parents=True, exist_ok=True)
    baseline = work / f"baseline-{scale}.json"
    code, base_wall, base_rss, _ = pytest_run(url, reports, None, "-m", "baseline", f"--baseline={baseline}")
    assert code == 0, "baseline capture failed"
    capture = work / f"sql-{scale}.jsonl"
    capture.unlink(missing_ok=True)
    # Warm-up: one untimed suite run, so the suite and the bare SQL both meet a warm cache
    # (otherwise whichever runs first pays for reading the ledger from disk).
    pytest_run(url, reports, None, "-m", "post_deploy", f"--baseline={baseline}", "-n", "0")
    code0, wall0, rss0, folder = pytest_run(url, reports, capture, "-p", "bench.sqlcapture", "-m", "post_deploy",
                                            f"--baseline={baseline}", "-n", "0")
    suite = junit_times(folder)
    verdict = json.loads((folder / "sign-off.json").read_text())["summary"]
    code2, wall2, rss2, _ = pytest_run(url, reports, None, "-m", "post_deploy", f"--baseline={baseline}", "-n", "2")
    bare = psql_times(url, capture)
    return {"scale": scale, "load_s": load_s, "baseline_s": base_wall, "baseline_rss_mb": base_rss,
            "suite": suite, "bare": bare, "wall_n0": wall0, "rss_n0_mb": rss0, "wall_n2": wall2,
            "rss_n2_mb": rss2, "verdict": verdict, "exit_n0": code0, "exit_n2": code2}


def report(r: dict) -> str:
    lines = [f"## {r['scale']:,} movements"
             + (f" (loaded in {r['load_s']:.0f} s)" if r["load_s"] else " (reused)"),
             "", "| criterion | in the suite (s) | bare SQL with psql (s) |", "|---|---:|---:|"]
    for name in sorted(r["suite"], key=lambda n: -r["suite"][n]):
        bare = r["bare"].get(name)
        lines.append(f"| {name} | {r['suite'][name]:.2f} | {'' if bare is None else f'{bare:.2f}'} |")
    total_bare = sum(r["bare"].values())
    lines += [
        "",
        f"- suite wall time `-n 0`: {r['wall_n0']:.1f} s; sum of bare SQL: {total_bare:.1f} s;"
        f" ratio {r['wall_n0'] / total_bare:.2f} (target <= 1.3)",
        f"- suite wall time `-n 2`: {r['wall_n2']:.1f} s ({'faster' if r['wall_n2'] < r['wall_n0'] else 'NOT faster'} than -n 0)",
        f"- peak memory of the pytest process: {r['rss_n0_mb']} MB (`-n 0`), {r['rss_n2_mb']} MB (largest of `-n 2`'s processes);"
        f" baseline capture {r['baseline_s']:.1f} s, {r['baseline_rss_mb']} MB",
        f"- verdict: {r['verdict']}",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                   help="an admin URL of the server to create the benchmark databases on")
    p.add_argument("--scales", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--reuse", action="store_true", help="reuse postdeploy_bench_<scale> if already loaded")
    p.add_argument("--work", default=str(ROOT / "reports" / "bench"), help="where reports and captures go")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for scale in args.scales:
        result = bench(args.url, scale, args.reuse, work)
        (work / f"result-{scale}.json").write_text(json.dumps(result, indent=2))
        print(report(result), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
