"""The balance machinery on real servers: the write probe leaves nothing behind, a target
without writes is never written, and concurrent ledger traffic neither fools the
reconciliation nor is blocked by the suite."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psycopg
import pytest

from postdeploy.balance.model import resolve
from postdeploy.balance.probe import WritesNotAllowed, probe_trigger
from postdeploy.data.baseline import capture
from postdeploy.database.catalog import Catalog
from postdeploy.database.session import connect
from postdeploy.ledger.shared import shared_spec
from postdeploy.ledger.scan import run
from postdeploy.signoff.settings import DatabaseSettings, Settings
from postdeploy.tenancy.model import TenantModel
from postdeploy.signoff.verdict import PARTIAL_EXIT  # a run narrowed by -m/-k: a partial GO at best

SETTINGS = Settings()


def fingerprint(url: str) -> dict[str, object]:
    """Row counts, balances and the ledger as hashes: equal fingerprints, equal data."""
    with psycopg.connect(url, autocommit=True) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM \"StockMovement\"), (SELECT count(*) FROM \"InventoryBalance\"),"
            " (SELECT count(*) FROM \"InventoryItem\"), (SELECT count(*) FROM \"Location\")"
        ).fetchone()
        balances = conn.execute(
            "SELECT md5(string_agg(b::text, '|' ORDER BY \"itemId\", \"locationId\")) FROM \"InventoryBalance\" b"
        ).fetchone()[0]
        ledger = conn.execute(
            "SELECT md5(string_agg(m::text, '|' ORDER BY id)) FROM \"StockMovement\" m"
        ).fetchone()[0]
    return {"counts": counts, "balances": balances, "ledger": ledger}


def model_for(conn: psycopg.Connection):
    catalog = Catalog(conn, SETTINGS.database.schemas)
    model, problems = resolve(catalog, SETTINGS.balance, SETTINGS.tenancy.tenant_column)
    assert not problems
    return catalog, model


def test_write_probe_leaves_database_unchanged(server, healthy_url):
    before = fingerprint(healthy_url)
    with connect(healthy_url, SETTINGS.database) as conn:
        catalog, model = model_for(conn)
        probe = probe_trigger(catalog, healthy_url, SETTINGS.database, model, allow_writes=True)
    assert probe.ok and len(probe.steps) == 4, probe
    assert fingerprint(healthy_url) == before


def test_write_probe_failing_midway_leaves_database_unchanged(server, healthy_url):
    # A trigger function that raises on DELETE: the probe stops at its last step.
    with psycopg.connect(healthy_url, autocommit=True) as conn:
        conn.execute(
            """CREATE OR REPLACE FUNCTION "apply_stock_movement"() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN RAISE EXCEPTION 'deletes are not supported'; END IF;
                INSERT INTO "InventoryBalance" ("orgId", "itemId", "locationId", "quantity", "updatedAt")
                VALUES (NEW."orgId", NEW."itemId", NEW."locationId", NEW."quantity", CURRENT_TIMESTAMP)
                ON CONFLICT ("itemId", "locationId") DO UPDATE
                   SET "quantity" = "InventoryBalance"."quantity" + EXCLUDED."quantity";
                RETURN NULL;
            END; $$"""
        )
    before = fingerprint(healthy_url)
    with connect(healthy_url, SETTINGS.database) as conn:
        catalog, model = model_for(conn)
        probe = probe_trigger(catalog, healthy_url, SETTINGS.database, model, allow_writes=True)
    assert not probe.ok
    assert probe.error.startswith("delete: ") and "deletes are not supported" in probe.error
    assert fingerprint(healthy_url) == before


def _ledger_writes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
            " WHERE relname IN ('StockMovement', 'InventoryBalance')"
        ).fetchone()[0]


def _settled_writes(url: str, previous: int, *, expect_change: bool) -> int:
    """The write counters once the suite's sessions have flushed their statistics."""
    deadline = time.monotonic() + (10 if expect_change else 2)
    value = _ledger_writes(url)
    while time.monotonic() < deadline and (value == previous) == expect_change:
        time.sleep(0.2)
        value = _ledger_writes(url)
    return value


def test_target_without_writes_is_never_written(server, healthy_url, run_suite, tmp_path):
    # The machinery refuses before it connects ...
    with connect(healthy_url, SETTINGS.database) as conn:
        catalog, model = model_for(conn)
        with pytest.raises(WritesNotAllowed):
            probe_trigger(catalog, healthy_url, SETTINGS.database, model, allow_writes=False)
        # ... and the session every criterion reads through refuses a write.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute('INSERT INTO "StockMovement" ("orgId", "itemId", "locationId", quantity)'
                         ' SELECT "orgId", "itemId", "locationId", 1 FROM "StockMovement" LIMIT 1')
    before = fingerprint(healthy_url)
    writes = _ledger_writes(healthy_url)
    run = run_suite("-m", "post_deploy", database_url=healthy_url)
    writes_after = _settled_writes(healthy_url, writes, expect_change=False)
    skipped = {c["name"]: c for c in run.signoff["criteria"] if c["outcome"] == "skipped"}
    assert "does not allow writes" in skipped["test_trigger_keeps_balances_current"]["message"]
    assert writes_after == writes, "a run without --postdeploy-allow-writes changed the ledger's write counters"
    assert fingerprint(healthy_url) == before
    # The same counters do see the rolled-back probe when writes are allowed.
    run = run_suite("-m", "post_deploy and balance", "--postdeploy-allow-writes", database_url=healthy_url, reports="writes")
    assert run.exit_code == PARTIAL_EXIT, run.output
    assert _settled_writes(healthy_url, writes, expect_change=True) > writes
    assert fingerprint(healthy_url) == before


class Writer:
    """Another application session inserting movements through the trigger, one per transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.inserted = 0
        self.slowest = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            # no prepared statements: an application behind a pooler in transaction mode must do without
            with psycopg.connect(self.url, autocommit=True, application_name="app-writer", prepare_threshold=None) as conn:
                keys = conn.execute(
                    'SELECT "orgId", "itemId", "locationId" FROM "InventoryBalance" ORDER BY 2, 3 LIMIT 20'
                ).fetchall()
                n = 0
                while not self._stop.is_set() and n < 200_000:
                    org, item, loc = keys[n % len(keys)]
                    started = time.perf_counter()
                    conn.execute(
                        'INSERT INTO "StockMovement" ("orgId", "itemId", "locationId", quantity, reason)'
                        " VALUES (%s, %s, %s, %s, 'sale')",
                        (org, item, loc, -1 if n % 3 else 5),
                    )
                    self.slowest = max(self.slowest, time.perf_counter() - started)
                    self.inserted += 1
                    n += 1
        except BaseException as err:  # reported by the test
            self.error = err

    def __enter__(self) -> Writer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while self.inserted == 0 and self.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@contextmanager
def lock_watch(url: str):
    """Samples, every 20 ms, sessions of the suite waiting on a lock and writers blocked by the suite."""
    found: list[tuple] = []
    samples = [0]
    stop = threading.Event()

    def run() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                found.extend(
                    conn.execute(
                        """SELECT w.pid, w.application_name, w.wait_event_type, w.query
                             FROM pg_stat_activity w
                            WHERE w.datname = current_database()  -- other tests' runs share the server
                              AND ((w.application_name = 'postdeploy' AND w.wait_event_type = 'Lock')
                                   OR EXISTS (SELECT 1 FROM pg_stat_activity b
                                               WHERE b.pid = ANY (pg_blocking_pids(w.pid))
                                                 AND b.application_name = 'postdeploy'))"""
                    ).fetchall()
                )
                samples[0] += 1
                time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield found, samples
    finally:
        stop.set()
        thread.join(timeout=10)


def test_reconciliation_under_concurrent_writes_has_no_false_mismatch(server, healthy_url, run_suite, tmp_path):
    baseline = tmp_path / "baseline.json"
    with connect(healthy_url, SETTINGS.database) as conn:
        catalog, model = model_for(conn)
        captured = capture(catalog, SETTINGS)
        captured.save(baseline)
        # The whole shared pass (balances, tenancy, zero data loss), as the suite makes it.
        spec = shared_spec(catalog, SETTINGS, model, TenantModel(catalog, SETTINGS.tenancy), captured)
        with Writer(healthy_url) as writer, connect(healthy_url, SETTINGS.database) as second:
            passes = []
            for n in range(16):  # in one statement, and in two slices sharing one exported snapshot
                passes.append(run([conn] if n % 2 else [conn, second], spec))
                time.sleep(0.03)  # let the writer commit between reads
            config = tmp_path / "workers.toml"  # workers even for this small ledger
            config.write_text(server.backup_config + "\n[database]\nparallel_min_ledger_rows = 0\nledger_sessions = 1\n")
            suite = run_suite("-m", "post_deploy", "-k", "reconcile or populated or consistent or rows_lost or history", "-n", "2",
                              "--postdeploy-baseline", str(baseline), "--postdeploy-config", str(config), database_url=healthy_url)
    assert writer.error is None, writer.error
    assert writer.inserted > 50
    assert [p.balance.drifted for p in passes] == [0] * len(passes)
    assert [p.balance.missing for p in passes] == [0] * len(passes)
    assert [p.cross_tenant for p in passes] == [[]] * len(passes)
    assert {p.history.row_hash for p in passes} == {captured.ledger.row_hash}  # new rows are not history
    assert passes[-1].rows > passes[0].rows  # the reads saw the traffic grow
    assert suite.exit_code == PARTIAL_EXIT, suite.output
    assert suite.outcomes("passed") == {
        "test_balances_reconcile_with_ledger", "test_balances_populated", "test_tenant_consistent_along_foreign_keys",
        "test_no_rows_lost", "test_ledger_history_unchanged",
    }, suite.output


def test_suite_sessions_never_block_the_writer(server, healthy_url, run_suite, reference_app, tmp_path):
    baseline = tmp_path / "baseline.json"
    from postdeploy.data.baseline import capture_to_file

    capture_to_file(healthy_url, SETTINGS, baseline)
    app = reference_app(healthy_url)
    config = tmp_path / "workers.toml"  # workers even for this small ledger
    config.write_text(server.backup_config + "\n[database]\nparallel_min_ledger_rows = 0\nledger_sessions = 1\n")
    with Writer(healthy_url) as writer, lock_watch(healthy_url) as (waits, samples):
        run = run_suite("-m", "post_deploy", "-n", "2", "--postdeploy-baseline", str(baseline), "--postdeploy-config", str(config),
                        database_url=healthy_url, env=app.env)
    assert writer.error is None, writer.error
    assert samples[0] > 10 and writer.inserted > 50
    assert waits == [], f"lock waits involving application_name=postdeploy: {waits[:5]}"
    assert writer.slowest < DatabaseSettings().lock_timeout_ms / 1000
    # Production-like (no --postdeploy-allow-writes): GO but for the optional write criterion.
    assert run.exit_code == 0, run.output
    assert run.outcomes("skipped") == {
        "test_trigger_keeps_balances_current",
        "test_restore_latest_backup",
        "test_alert_delivery",
        "test_row_level_security",
    }


def test_backup_monitoring_heartbeat_where_configured(server, healthy_url, run_suite, tmp_path):
    with psycopg.connect(healthy_url, autocommit=True) as conn:
        conn.execute(
            'CREATE TABLE "BackupCheck" (id bigserial PRIMARY KEY, "startedAt" timestamp(3) NOT NULL,'
            ' "finishedAt" timestamp(3), status text NOT NULL)'
        )
        conn.execute(
            """INSERT INTO "BackupCheck" ("startedAt", "finishedAt", status)
               VALUES ((now() AT TIME ZONE 'UTC') - interval '31 hours', (now() AT TIME ZONE 'UTC') - interval '31 hours', 'success')"""
        )
    config = tmp_path / "postdeploy.toml"
    config.write_text('[monitoring]\nbackup_monitor_table = "BackupCheck"\n')
    run = run_suite("-m", "monitoring", "-k", "test_job_heartbeats", "--postdeploy-config", str(config), database_url=healthy_url)
    assert run.exit_code == 1, run.output
    (criterion,) = run.selected
    assert criterion["outcome"] == "failed"
    assert "backup monitoring (BackupCheck): newest run finished 31.0 h ago (> 25 h)" in criterion["observed"]
    assert "reconciliation (ReconciliationRun): finished" in criterion["observed"]
    assert {row["job"] for row in criterion["evidence"]} == {"reconciliation", "backup monitoring"}


def test_missing_baseline_is_a_required_skip_and_a_bad_one_fails(server, healthy_url, run_suite, tmp_path):
    run = run_suite("-m", "post_deploy and data", "--postdeploy-baseline", str(tmp_path / "none.json"), database_url=healthy_url)
    assert run.exit_code == 1, run.output
    assert run.outcomes("skipped") == {"test_no_rows_lost", "test_ledger_history_unchanged"}
    assert all("run `pytest -m baseline` before the deploy" in c["message"] for c in run.selected)
    assert run.output.rstrip().endswith("SIGN-OFF: NO-GO - 38 not selected, 2 required checks skipped, no criterion passed"), \
        run.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    run = run_suite("-m", "post_deploy and data", "--postdeploy-baseline", str(bad), database_url=healthy_url, reports="bad")
    assert run.outcomes("failed") == {"test_no_rows_lost", "test_ledger_history_unchanged"}, run.output
    assert "is unreadable" in run.output and "Traceback" not in run.output


def test_plain_run_never_overwrites_the_baseline(server, healthy_url, run_suite, tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text("sentinel")
    run = run_suite("--postdeploy-baseline", str(baseline), database_url=healthy_url)  # no -m: every criterion
    assert "test_capture_baseline" not in {c["name"] for c in run.signoff["criteria"]}
    assert baseline.read_text() == "sentinel"


def test_sliced_pass_gives_what_one_statement_gives(server, healthy_url):
    """The pass over several sessions (slices by key, one exported snapshot) adds up to the one
    statement's figures, samples included, on a ledger with a fault of each kind it finds."""
    from dataclasses import asdict

    from postdeploy.reference import apply_fault

    with connect(healthy_url, SETTINGS.database) as conn:
        captured = capture(model_for(conn)[0], SETTINGS)
    for fault in ("ledger_tenant_mismatch", "balance_off_by_one", "missing_balance_row", "orphan_balance_row",
                  "ledger_row_edited"):
        apply_fault(healthy_url, fault)
    with connect(healthy_url, SETTINGS.database) as conn:
        catalog, model = model_for(conn)
        spec = shared_spec(catalog, SETTINGS, model, TenantModel(catalog, SETTINGS.tenancy), captured)
        sessions = [connect(healthy_url, SETTINGS.database) for _ in range(3)]
        try:
            one, sliced = run([conn], spec), run(sessions, spec)
        finally:
            for session in sessions:
                session.close()

    def figures(found) -> dict:
        record = asdict(found)
        record.pop("seconds")
        record["balance"].pop("seconds")
        return record

    assert one.balance.drifted and one.balance.missing and one.balance.orphans and one.cross_tenant
    assert one.history.row_hash != captured.ledger.row_hash
    assert figures(sliced) == figures(one)


@pytest.mark.parametrize("sessions", [1, 2])
def test_a_pass_stopped_before_it_begins_never_starts(server, healthy_url, sessions):
    """A cancel that comes before the statements (no collected criterion needs the pass) stops it."""
    import threading

    from postdeploy.ledger.scan import Stopped

    stop = threading.Event()
    stop.set()
    with connect(healthy_url, SETTINGS.database) as conn:
        catalog, model = model_for(conn)
        spec = shared_spec(catalog, SETTINGS, model, TenantModel(catalog, SETTINGS.tenancy), None)
        conns = [connect(healthy_url, SETTINGS.database) for _ in range(sessions)]
        try:
            with pytest.raises(Stopped):
                run(conns, spec, stop)
        finally:
            for c in conns:
                c.close()
