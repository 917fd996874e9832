"""Schema per tenant, signed off as a new user would: `postdeploy init` on the database, the
baseline, then `pytest -m post_deploy`, on real servers (the embedded one, and the machine's
where TEST_DATABASE_URL is set). Also: init on an application unlike the reference declares
what it lacks, and no criterion fails on a name the application never had."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import psycopg
import pytest

from conftest import Server
from postdeploy.reference.backups import Dumps, backup_source
from postdeploy.reference.tenant_schemas import SCHEMA_FAULTS, apply_schema_fault, build

SCHEMA_CRITERIA = {"test_tenant_schemas_registered", "test_tenant_schemas_migrated", "test_tenant_schemas_same_shape",
                   "test_no_cross_tenant_schema_reference", "test_no_rows_lost_per_tenant_schema"}
# The reference deployment's names: an application that never had them must never read them.
REFERENCE_NAMES = ("Organization", "orgId", "_prisma_migrations", "InventoryItem", "StockMovement", "InventoryBalance",
                   "ReconciliationRun", "add_organizations")


@pytest.fixture(scope="module", params=[
    "embedded",
    pytest.param("local", marks=pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set")),
])
def pg(request: pytest.FixtureRequest):
    base = request.getfixturevalue("embedded").url() if request.param == "embedded" else os.environ["TEST_DATABASE_URL"]
    srv = Server(request.param, base)
    yield srv
    srv.drop_all()


def init(url: str, folder: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY")}
    done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init", "--database-url", url], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder / "postdeploy.toml"


def sign_off(run_suite, url: str, config: Path, name: str):
    """A full post-deploy run; its criteria by outcome."""
    run = run_suite("-m", "post_deploy", "--postdeploy-config", str(config), database_url=url, reports=name)
    return run, {c["name"]: c for c in run.signoff["criteria"]}


def failed(criteria: dict) -> set[str]:
    return {name for name, c in criteria.items() if c["outcome"] in ("failed", "error")}


def schemas_named(criterion: dict) -> set[str]:
    return {row["schema"] for row in criterion["evidence"]}


def test_three_tenant_faults_named_and_nothing_else(pg, run_suite, tmp_path):
    """The issue's acceptance database: init, baseline, healthy GO on the schema criteria; then the
    three faults, each named, and no other failure."""
    url = pg.create_database("acceptance")
    build(url, ["acme", "globex", "initech"])
    config = init(url, tmp_path)
    raw = tomllib.loads(config.read_text())
    assert raw["tenancy"] == {"model": "schema", "registry": "public.tenants", "schema_column": "schema_name",
                              "shared_schema": "public", "template": ""}
    assert raw["migration"]["tool"] == "django" and raw["alerting"] == {"enabled": False}
    # What the team adds: its backups (real pg_dump files of this database).
    with backup_source("healthy", Dumps.of(url, tmp_path / "dumps"), tmp_path / "backups") as (backups, _):
        config.write_text(config.read_text() + "\n" + backups)
    baseline = run_suite("-m", "baseline", "--postdeploy-config", str(config), database_url=url, reports="baseline")
    assert baseline.exit_code == 0, baseline.output

    healthy, criteria = sign_off(run_suite, url, config, "healthy")
    assert failed(criteria) == set(), healthy.output
    assert {n for n in SCHEMA_CRITERIA if criteria[n]["outcome"] == "passed"} == SCHEMA_CRITERIA
    assert healthy.exit_code == 0 and healthy.signoff["verdict"] == "GO", healthy.output

    apply_schema_fault(url, "left_behind", "initech")
    apply_schema_fault(url, "column_nullable", "globex")
    apply_schema_fault(url, "registered_without_schema", "umbrella")
    faulty, criteria = sign_off(run_suite, url, config, "faulty")
    assert faulty.exit_code == 1
    assert failed(criteria) == {"test_tenant_schemas_registered", "test_tenant_schemas_migrated",
                                "test_tenant_schemas_same_shape"}, faulty.output
    registered, migrated, shape = (criteria[n] for n in ("test_tenant_schemas_registered", "test_tenant_schemas_migrated",
                                                         "test_tenant_schemas_same_shape"))
    assert registered["evidence"] == [{"schema": "umbrella", "registered": "registered, no schema", "migrations": "-",
                                       "shape": "-", "references": "-"}]
    assert [(r["schema"], r["migrations"]) for r in migrated["evidence"]] == [
        ("initech", "missing inventory.0002_movement_created_index")]
    assert {r["schema"]: r["shape"] for r in shape["evidence"]} == {
        "globex": "column item.name: character varying(100) nullable (template: character varying(100) NOT NULL)",
        "initech": "missing index movement.movement_created_at",
    }
    assert "1 pass every check" in shape["observed"]  # acme: the passing tenants are counted, not listed

    # As the issue tells it: the database re-created with its faults, then init, then the sign-off.
    again = pg.create_database("acceptance_again")
    build(again, ["acme", "globex", "initech"])
    apply_schema_fault(again, "left_behind", "initech")
    apply_schema_fault(again, "column_nullable", "globex")
    apply_schema_fault(again, "registered_without_schema", "umbrella")
    (tmp_path / "again").mkdir()
    config = init(again, tmp_path / "again")
    run, criteria = sign_off(run_suite, again, config, "again")
    assert failed(criteria) == {"test_tenant_schemas_registered", "test_tenant_schemas_migrated",
                                "test_tenant_schemas_same_shape"}, run.output


def test_each_schema_fault_fails_exactly_its_criteria(pg, run_suite, tmp_path):
    """The catalogue: every fault planted in its own tenant schema of one database, one run; each
    criterion names exactly the schemas whose fault is its own."""
    url = pg.create_database("catalogue")
    tenants = [f"t{n:02d}" for n in range(1, 11)]
    build(url, tenants)
    config = init(url, tmp_path)
    assert run_suite("-m", "baseline", "--postdeploy-config", str(config), database_url=url, reports="b").exit_code == 0
    planted = {"left_behind": "t01", "history_behind": "t02", "column_nullable": "t03", "registered_without_schema": "t99",
               "schema_not_registered": "t04", "cross_tenant_foreign_key": "t05", "rows_lost": "t07"}
    for fault, schema in planted.items():
        apply_schema_fault(url, fault, schema, other="t06")
    run, criteria = sign_off(run_suite, url, config, "faulty")
    assert failed(criteria) == {c for f in SCHEMA_FAULTS.values() for c in f.criteria}, run.output
    for name in SCHEMA_CRITERIA:
        wanted = {schema for fault, schema in planted.items() if name in SCHEMA_FAULTS[fault].criteria}
        assert schemas_named(criteria[name]) == wanted, (name, criteria[name]["evidence"])
    reference = criteria["test_no_cross_tenant_schema_reference"]["evidence"][0]["references"]
    assert reference == "constraint movement.movement_item_elsewhere: foreign key to t06.item"


@pytest.mark.parametrize(("keys", "message"), [
    ('registry = "public.nope"', "tenancy.registry names table 'public.nope', which does not exist"),
    ('registry = "public.tenants"\nschema_column = "slug"', "tenancy.schema_column: table 'public.tenants' has no column 'slug'"),
], ids=["table", "column"])
def test_a_registry_the_catalog_lacks_stops_the_run_naming_the_key(keys, message, pg, run_suite, tmp_path):
    url = pg.create_database(f"registry_{len(keys)}")
    build(url, ["acme", "globex"])
    config = tmp_path / "postdeploy.toml"
    config.write_text(f'[tenancy]\nmodel = "schema"\n{keys}\n')
    run = run_suite("-m", "post_deploy", "--postdeploy-config", str(config), database_url=url)
    assert run.exit_code == 4 and message in run.output and "Traceback" not in run.output, run.output


def test_init_on_an_application_unlike_the_reference_declares_what_it_lacks(pg, run_suite, tmp_path):
    """A single-tenant application of other names: init writes each absent part with its switch,
    and no criterion fails, nor names a table, column or migration of the reference deployment."""
    url = pg.create_database("unlike")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE customer (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE);
            CREATE TABLE invoice (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customer (id),
                                  total numeric(12, 2) NOT NULL);
            CREATE INDEX invoice_customer_id ON invoice (customer_id);
            INSERT INTO customer (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, 5) g;
            INSERT INTO invoice (customer_id, total) SELECT 1 + g % 5, g FROM generate_series(1, 20) g;
        """)
    config = init(url, tmp_path)
    raw = tomllib.loads(config.read_text())
    assert raw["tenancy"] == {"model": "none"} and raw["migration"] == {"tool": "none"}
    assert raw["balance"] == {"enabled": False} and raw["alerting"] == {"enabled": False}
    assert run_suite("-m", "baseline", "--postdeploy-config", str(config), database_url=url, reports="b").exit_code == 0
    run, criteria = sign_off(run_suite, url, config, "run")
    assert failed(criteria) == set(), run.output
    texts = " ".join(f"{c['wanted']} {c['observed']} {c['evidence']}" for c in criteria.values())
    assert not [n for n in REFERENCE_NAMES if n in texts], texts
    assert any(c["outcome"] == "passed" for c in criteria.values())


DJANGO_TENANTS = Path(__file__).resolve().parent / "migrations" / "django_tenants"


def manage(url: str, *args: str) -> None:
    """Our django-tenants project's manage.py, run on the database as a deploy runs it."""
    env = {**os.environ, "DATABASE_URL": url}
    done = subprocess.run([sys.executable, "manage.py", *args, "-v", "0"], cwd=DJANGO_TENANTS, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def register(url: str, *schemas: str) -> None:
    """Tenants signed up: a row in the registry and an empty schema for migrate_schemas to fill."""
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute("INSERT INTO customers_client (schema_name, name) VALUES (%s, %s)", (schema, schema.title()))
            conn.execute(f'CREATE SCHEMA "{schema}"')


def test_django_tenants_migrate_schemas_go_then_a_tenant_stopped_partway(pg, run_suite, tmp_path):
    """A real django-tenants database, migrated by migrate_schemas: GO on every criterion init
    configures; then a tenant whose migrate_schemas stopped after its first migration, named."""
    pytest.importorskip("django_tenants")
    url = pg.create_database("djtenants")
    manage(url, "migrate_schemas", "--shared")
    register(url, "acme", "globex", "hooli")
    manage(url, "migrate_schemas", "--tenant")
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in ("acme", "globex", "hooli"):
            conn.execute(f'INSERT INTO "{schema}".inventory_item (name, sku) VALUES (%s, %s)', (schema, f"{schema}-1"))
    config = init(url, tmp_path)
    raw = tomllib.loads(config.read_text())
    assert raw["tenancy"]["model"] == "schema" and raw["tenancy"]["registry"] == "public.customers_client"
    with backup_source("healthy", Dumps.of(url, tmp_path / "dumps"), tmp_path / "backups") as (backups, _):
        config.write_text(config.read_text() + "\n" + backups)
    assert run_suite("-m", "baseline", "--postdeploy-config", str(config), database_url=url, reports="b").exit_code == 0
    healthy, criteria = sign_off(run_suite, url, config, "healthy")
    assert failed(criteria) == set(), healthy.output
    assert {n for n in SCHEMA_CRITERIA if criteria[n]["outcome"] == "passed"} == SCHEMA_CRITERIA
    assert healthy.exit_code == 0 and healthy.signoff["verdict"] == "GO", healthy.output

    register(url, "initech")
    manage(url, "migrate_schemas", "--schema=initech", "inventory", "0001")  # the run stopped after 0001
    stopped, criteria = sign_off(run_suite, url, config, "stopped")
    assert failed(criteria) == {"test_tenant_schemas_migrated", "test_tenant_schemas_same_shape"}, stopped.output
    migrated = criteria["test_tenant_schemas_migrated"]["evidence"]
    assert [r["schema"] for r in migrated] == ["initech"]
    # Migrating inventory to 0001 applied it alone: the other apps' migrations are missing there too.
    assert migrated[0]["migrations"].startswith("missing ") and "inventory.0002_movement_created_index" in migrated[0]["migrations"]
    assert schemas_named(criteria["test_tenant_schemas_same_shape"]) == {"initech"}


def test_tenant_schemas_by_name_without_a_registry(pg, run_suite, tmp_path):
    """No registry: init finds the tenant schemas by their names' common prefix (schema_pattern)."""
    url = pg.create_database("pattern")
    build(url, ["tenant_a", "tenant_b", "tenant_c"], register=False)
    config = init(url, tmp_path)
    raw = tomllib.loads(config.read_text())
    assert raw["tenancy"]["model"] == "schema" and raw["tenancy"]["schema_pattern"] == "tenant_%"
    assert "registry" not in raw["tenancy"]
    apply_schema_fault(url, "column_nullable", "tenant_b")
    run, criteria = sign_off(run_suite, url, config, "run")
    assert failed(criteria) == {"test_tenant_schemas_same_shape"}, run.output
    assert schemas_named(criteria["test_tenant_schemas_same_shape"]) == {"tenant_b"}
    assert "all 3 tenant schemas" in criteria["test_tenant_schemas_migrated"]["observed"]
