"""Every shape of the reference deployment, signed off by configuration alone: `postdeploy init`
writes the file, the shape's hand adjustments (each asked for by a '# guessed:' comment) are
made, the healthy load is GO with its not-applicable criteria counted apart, and each of the
shape's faults fails exactly the criteria it names, with evidence naming rows by primary key."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from postdeploy.data.baseline import capture_to_file
from postdeploy.discover.write import init
from postdeploy.reference import apply_fault
from postdeploy.reference.shapes import SHAPE_FAULTS, SHAPES, load_shape
from postdeploy.signoff.settings import load_settings

CTID = re.compile(r"^\(\d+,\d+\)$")
NO_DEFAULT_ORG = {"DEFAULT_ORG_ID": ""}  # the reference's default organization is no shape's


@pytest.fixture(scope="session")
def shape_templates(server) -> dict[str, str]:
    """Each shape loaded once per server, as a template database."""
    names = {}
    for name, shape in SHAPES.items():
        url = server.create_database(f"shape_{name}")
        load_shape(url, shape)
        names[name] = f"shape_{name}"
    return names


def _copy(server, shape_templates, name: str) -> str:
    return server.create_database(f"s{uuid.uuid4().hex[:8]}", template=shape_templates[name])


def _configure(url: str, name: str, folder: Path, server) -> Path:
    """init's file (which declares no alerting: no route where it ran), with the shape's hand
    adjustments and the server's healthy backup folder."""
    path = folder / f"{name}.toml"
    init(url, path)
    path.write_text(SHAPES[name].adjust(path.read_text()) + "\n" + server.backup_config)
    return path


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shape_healthy_is_go_by_configuration(name, server, shape_templates, run_suite, tmp_path):
    url = _copy(server, shape_templates, name)
    config = _configure(url, name, tmp_path, server)
    text = config.read_text()
    # Every adjustment replaced a guessed line.
    for a in SHAPES[name].adjustments:
        assert a.wanted in text
    baseline = str(tmp_path / "baseline.json")
    before = run_suite("-m", "baseline", "--postdeploy-config", str(config), "--postdeploy-baseline", baseline,
                       database_url=url, env=NO_DEFAULT_ORG, reports="baseline-run")
    assert before.exit_code == 0, before.output
    run = run_suite("-m", "post_deploy", "--postdeploy-allow-writes", "--postdeploy-config", str(config), "--postdeploy-baseline", baseline,
                    database_url=url, env=NO_DEFAULT_ORG)
    assert run.exit_code == 0, run.output
    last = run.output.rstrip().splitlines()[-1]
    assert last.startswith("SIGN-OFF: GO - ") and " not applicable" in last, last
    assert not run.outcomes("failed") and not run.outcomes("error"), run.output
    applicable = {c["name"] for c in run.signoff["criteria"] if c["outcome"] == "not applicable"}
    assert {"test_liveness_endpoint", "test_cross_org_item_refused"} <= applicable  # [app] enabled = false
    for criterion in run.signoff["criteria"]:
        if criterion["outcome"] == "not applicable":
            assert criterion["observed"].startswith("not applicable: ") and "()" not in criterion["observed"]
    assert "Traceback" not in run.output


@pytest.mark.parametrize("fault", sorted(f.name for f in SHAPE_FAULTS), ids=str)
def test_shape_fault_fails_its_criterion(fault, server, shape_templates, run_suite, tmp_path):
    spec = next(f for f in SHAPE_FAULTS if f.name == fault)
    url = _copy(server, shape_templates, spec.shape)
    config = _configure(url, spec.shape, tmp_path, server)
    apply_fault(url, fault)
    baseline = tmp_path / "baseline.json"
    capture_to_file(url, load_settings(config, explicit=True), baseline)
    run = run_suite("-m", "post_deploy", "--postdeploy-allow-writes", "--postdeploy-config", str(config), "--postdeploy-baseline", str(baseline),
                    database_url=url, env=NO_DEFAULT_ORG)
    assert run.exit_code == 1, run.output
    assert run.outcomes("failed") == set(spec.criteria), run.output
    assert not run.outcomes("error"), run.output
    for criterion in run.signoff["criteria"]:
        if criterion["outcome"] == "failed":
            assert ": FAILED (wanted " in criterion["message"]
            assert criterion["evidence"], criterion
            assert not any(CTID.match(v) for row in criterion["evidence"] for v in row.values()), criterion["evidence"]
    assert "Traceback" not in run.output


def test_cross_tenant_evidence_names_every_key_column(server, shape_templates, run_suite, tmp_path):
    url = _copy(server, shape_templates, "derived")
    config = _configure(url, "derived", tmp_path, server)
    apply_fault(url, "derived_cross_tenant_stock")
    run = run_suite("-m", "tenancy", "--postdeploy-config", str(config), database_url=url, env=NO_DEFAULT_ORG)
    failed = [c for c in run.signoff["criteria"] if c["outcome"] == "failed"]
    assert [c["name"] for c in failed] == ["test_tenant_consistent_along_foreign_keys"], run.output
    row = failed[0]["evidence"][0]
    assert row["table"] == "WarehouseStock"
    assert row["row"] == "itemId=itm_alpha_0001, warehouseId=whs_bravo_1"
    assert row["parents"] == "Item=cmp_alpha, Warehouse=cmp_bravo"


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("tenancy", 'columns = { pharmacies = "tenant_id" }', 'tenancy.columns: table "pharmacies" has no column "tenant_id"'),
        ("tenancy", 'nullable = ["staff"]', 'tenancy.nullable names table "staff", which does not exist'),
        ("balance", 'ledger_quantity_sql = "CASE kind WHEN 1 THEN -qty END"',
         "balance.ledger_quantity_sql is not a valid SQL expression over inventory_transactions"),
        ("balance", 'ledger_where = "warehouse_id IS NOT NULL; DROP TABLE users"',
         "balance.ledger_where must be one SQL expression, without ';'"),
        ("balance", 'ledger_where = "warehouse = 1"',
         "balance.ledger_where is not a valid SQL expression over inventory_transactions"),
        ("balance", 'ledger_quantity_sql = "qty % 2"', "balance.ledger_quantity_sql must not contain '%'"),
    ],
    ids=["override-missing-column", "nullable-missing-table", "quantity-sql", "where-two-statements",
         "where-unknown-column", "quantity-sql-percent"],
)
def test_config_errors_name_the_key(section, line, message, server, shape_templates, run_suite, tmp_path):
    url = _copy(server, shape_templates, "signed")
    config = _configure(url, "signed", tmp_path, server)
    key = line.split(" = ")[0]
    text = re.sub(rf"^{key} = .*\n", "", config.read_text(), flags=re.M)  # the line init wrote, if any
    config.write_text(text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1))
    run = run_suite("-m", "post_deploy", "--postdeploy-config", str(config), database_url=url, env=NO_DEFAULT_ORG)
    assert run.exit_code == 4, run.output
    assert message in run.output
    assert "Traceback" not in run.output
    assert len([x for x in run.output.splitlines() if x.startswith("ERROR")]) == 1, run.output


def test_signed_ledger_drift_evidence_names_the_balance_key(server, shape_templates, run_suite, tmp_path):
    url = _copy(server, shape_templates, "signed")
    config = _configure(url, "signed", tmp_path, server)
    apply_fault(url, "signed_ledger_drift")
    run = run_suite("-m", "balance", "--postdeploy-config", str(config), database_url=url, env=NO_DEFAULT_ORG)
    failed = [c for c in run.signoff["criteria"] if c["outcome"] == "failed"]
    assert [c["name"] for c in failed] == ["test_balances_reconcile_with_ledger"], run.output
    assert failed[0]["evidence"][0]["key"] == "product_id=1, warehouse_id=1"
    assert failed[0]["evidence"][0]["delta"] == "4"  # an EXIT of 4 the stock table never saw
    assert "CASE transaction_type WHEN 'EXIT' THEN -qty ELSE qty END" in failed[0]["wanted"]
