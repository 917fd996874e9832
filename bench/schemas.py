"""Schema-per-tenant benchmark: 1,000 tenant schemas x 20 tables signed off in one catalog pass,
next to the same checks run schema by schema.

    python -m bench.run --schemas [--tenant-schemas 1000] [--rounds 3] [--reuse] [--url ...]

On one server, <prefix>_schemas_<N> holds public.tenants and N tenant schemas built by
postdeploy.reference.tenant_schemas: each django_migrations, location, item, movement and 16
more tables (20 tables, 21 indexes, 23 constraints), a few rows each. `postdeploy init` writes
its configuration and `pytest -m baseline` its baseline once. Each round runs, in a rotated order:

- the sign-off, `pytest -m post_deploy` with that configuration: the schema criteria read the
  catalog once for all schemas (a few statements), and count rows in UNION ALL batches;
- the schema criteria's reads and judgements alone, in one process (`python -m bench.schemas
  one-pass URL`): the catalog read once for all schemas, the rows counted in batches;
- the same checks schema by schema (`python -m bench.schemas per-schema URL`): the shape, the
  history, the references and the row counts of one schema at a time, as a loop over the
  tenants would run them: 11 statements a schema.

It prints medians with [min-max] and each contender's peak RSS (goal: < 300 MB) as Markdown;
results go to reports/bench/schemas/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

from bench.run import MEASURE, ROOT, Contender, _cell, db_url

GOAL_RSS_MB = 300
TABLES = 20  # django_migrations, location, item, movement and 16 more
EXTRA_TABLES = TABLES - 4


def ensure_built(admin: str, name: str, count: int, reuse: bool) -> tuple[str, float | None]:
    """The database of `count` tenant schemas (built unless reused); the build's seconds."""
    from postdeploy.reference.tenant_schemas import build

    url = db_url(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and reuse:
            return url, None
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    started = time.perf_counter()
    build(url, [f"tenant_{i:04d}" for i in range(1, count + 1)], extra_tables=EXTRA_TABLES)
    return url, time.perf_counter() - started


def checks(url: str, how: str) -> int:
    """The schema criteria's reads and judgements, in one pass ("one-pass", as the criteria run
    them) or one schema at a time ("per-schema", the loop the one pass replaces)."""
    from postdeploy.database.session import connect
    from postdeploy.migration.tools import reader_for
    from postdeploy.signoff.settings import DatabaseSettings, load_settings
    from postdeploy.tenancy import schemas as s

    settings = load_settings(Path("postdeploy.toml"), explicit=True)
    reader = reader_for(settings.migration)
    with connect(url, DatabaseSettings()) as conn:
        if how == "one-pass":
            found = s.SchemaTenancy.read(conn, settings.tenancy, reader)
            counts = s.row_counts(conn, found.tenants)
            failing = sum(1 for schema in found.tenants if found.shape_differences[schema])
            tenants = found.tenants
        else:
            _, _, tenants = s.find_tenants(conn, settings.tenancy)
            shapes, histories, references, counts = {}, {}, {}, {}
            for schema in tenants:
                shapes |= s.read_shapes(conn, [schema])
                histories |= s.read_histories(conn, reader, [schema], shapes)
                references[schema] = conn.execute(s.CROSS_REFERENCES, {"c": [schema], "s": tenants}).fetchall()
                counts |= s.row_counts(conn, [schema])
            template = s.template_shape(shapes, tenants, settings.tenancy.template)
            failing = sum(1 for schema in tenants if s.differences(shapes[schema], template))
    print(f"{len(tenants)} schemas, {sum(len(t) for t in counts.values())} tables counted, {failing} differ", file=sys.stderr)
    return 0


def contenders(url: str, work: Path) -> list[Contender]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE")} | {"DATABASE_URL": url}
    reports = work / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    suite = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"),
             "--rootdir", str(ROOT), f"--postdeploy-report-dir={reports}", "-q", str(ROOT / "verifications"),
             "-m", "post_deploy", "--postdeploy-config", str(work / "postdeploy.toml")]
    helper = env | {"PYTHONPATH": str(ROOT)}
    return [Contender("`pytest -m post_deploy` (the whole sign-off)", suite, env, reports),
            Contender("the schema checks, one catalog pass", [sys.executable, "-m", "bench.schemas", "one-pass", url], helper),
            Contender("the same checks, schema by schema", [sys.executable, "-m", "bench.schemas", "per-schema", url], helper)]


def _run(contender: Contender, cwd: Path):
    done = subprocess.run([sys.executable, "-c", MEASURE, *contender.argv], cwd=cwd, env=contender.env,
                          capture_output=True, text=True)
    line = next((x for x in done.stderr.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"{contender.name} did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    _, code, wall, rss = line.split()
    return float(wall), int(rss) // 1024, int(code), done.stdout + done.stderr


def main(args) -> int:
    work = Path(args.work) / "schemas"
    work.mkdir(parents=True, exist_ok=True)
    count = args.tenant_schemas
    name = f"{args.database_prefix}_schemas_{count}"
    url, built = ensure_built(args.url, name, count, args.reuse)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    config = work / "postdeploy.toml"
    subprocess.run([sys.executable, "-m", "postdeploy.cli", "init", "--database-url", url, "--force", "--out", str(config)],
                   cwd=work, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"),
                    "--rootdir", str(ROOT), f"--postdeploy-report-dir={work / 'baseline'}", "-q", str(ROOT / "verifications"),
                    "-m", "baseline", "--postdeploy-config", str(config)], cwd=work, env=env | {"DATABASE_URL": url},
                   check=True, capture_output=True)
    racers = contenders(url, work)
    samples: dict[str, list[tuple[float, int, int]]] = {c.name: [] for c in racers}
    criteria: dict[str, float] = {}
    for n in range(args.rounds):
        for contender in racers[n % len(racers):] + racers[:n % len(racers)]:
            wall, rss, code, output = _run(contender, work)
            samples[contender.name].append((wall, rss, code))
            if contender.reports is not None:
                folder = max(p for p in contender.reports.iterdir() if p.is_dir())
                signoff = json.loads((folder / "sign-off.json").read_text())
                criteria = {c["name"]: c["duration_s"] for c in signoff["criteria"] if "tenant_schema" in c["name"]}
                failed = [c["name"] for c in signoff["criteria"] if c["outcome"] in ("failed", "error")]
                if failed:
                    raise SystemExit(f"the healthy sign-off failed {failed}:\n{output[-3000:]}")
    result = {"schemas": count, "tables_per_schema": TABLES, "build_s": built, "rounds": args.rounds,
              "samples": samples, "criteria_s": criteria}
    (work / f"result-{count}.json").write_text(json.dumps(result, indent=2))
    print(report(result))
    return 0


def report(r: dict) -> str:
    lines = [f"{r['schemas']:,} tenant schemas x {r['tables_per_schema']} tables, {r['rounds']} rounds"
             + (f" (built in {r['build_s']:.0f} s)" if r["build_s"] else ""), "",
             "| | wall time | peak RSS (largest process) |", "|---|---:|---:|"]
    for name, values in r["samples"].items():
        lines.append(f"| {name} | {_cell([w for w, _, _ in values])} | {max(m for _, m, _ in values)} MB |")
    lines += ["", "Criteria inside the sign-off (last round): "
              + ", ".join(f"{n} {s:.2f} s" for n, s in sorted(r["criteria_s"].items()))]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] in (["one-pass"], ["per-schema"]):
        sys.exit(checks(sys.argv[2], sys.argv[1]))
    raise SystemExit("usage: python -m bench.run --schemas (or: python -m bench.schemas one-pass|per-schema URL)")
