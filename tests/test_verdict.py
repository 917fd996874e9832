"""A verdict that means what it says: never a GO over success criteria the run left out or over
nothing passed, and every label of the page, sign-off.md and sign-off.json the verdict's own."""

from __future__ import annotations

import re

import pytest

from postdeploy.signoff.checklist import SUCCESS_CRITERIA
from test_report import dom, needs_chromium
from conftest import EMBEDDED_ONLY

EVERY = [s.title for s in SUCCESS_CRITERIA]


def page_of(document: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """What a reader sees: the banner's class, each success criterion's status, each criterion's label."""
    banner = re.search(r'<section id="verdict" class="([^"]+)">\s*<h1>SIGN-OFF: ([^<]+)</h1>', document)
    titles = re.findall(r'<td class="sc-title">([^<]+)<br>', document)
    statuses = re.findall(r'<span class="status">([^<]+)</span>', document)
    labels = re.findall(r'<td class="outcome">([^<]+)</td>\s*<td>[^<]*<br><span class="name">[^<]*::(\w+)</span>', document)
    return f"{banner[1]} {banner[2]}", dict(zip(titles, statuses, strict=True)), {name: label for label, name in labels}


@needs_chromium
@pytest.mark.parametrize("selection, verdict, banner, exit_code, not_selected", [
    ("post_deploy", "GO", "go GO", 0, []),
    ("post_deploy and not backup and not data", "PARTIAL GO", "partial PARTIAL GO", 7, ["Zero data loss", "Backups automated"]),
    ("post_deploy and not http", "PARTIAL GO", "partial PARTIAL GO", 7, []),  # health and tenancy partly selected
    ("post_deploy and monitoring", "PARTIAL GO", "partial PARTIAL GO", 7, [t for t in EVERY if t != "Monitoring configured"]),
], ids=["all", "no-backup-no-data", "no-http", "monitoring"])
def test_page_markdown_and_json_agree_with_the_verdict(selection, verdict, banner, exit_code, not_selected, run_suite, tmp_path):
    run = run_suite("-m", selection, "--postdeploy-target", "demo")
    document = run.signoff
    assert run.exit_code == exit_code, run.output
    assert document["verdict"] == verdict and document["partial"] is (verdict == "PARTIAL GO")
    assert document["not_selected"] == not_selected
    assert run.output.rstrip().splitlines()[-1] == f"SIGN-OFF: {verdict} - {document['summary']}"
    if not_selected:
        assert document["summary"].startswith(f"not selected: {', '.join(not_selected)}; ")
    if selection.endswith("not http"):
        assert document["summary"].startswith("partly selected: Application functioning normally (1 of 7 criteria),"
                                              " Tenant isolation verified (3 of 7 criteria); ")

    shown_banner, statuses, labels = page_of(dom(run.folder / "sign-off.html", tmp_path / "chromium"))
    assert shown_banner == banner
    assert statuses == {line["title"]: line["status"] for line in document["success_criteria"]}
    assert [t for t, status in statuses.items() if status == "not selected"] == not_selected
    assert labels == {c["name"]: c["label"] for c in document["criteria"]}
    # A criterion the run left out is shown as such, never as passed or skipped.
    left_out = {c["name"] for c in document["criteria"] if c["outcome"] == "not selected"}
    assert {name for name, label in labels.items() if label == "not selected"} == left_out
    assert bool(left_out) is (verdict == "PARTIAL GO")
    text = (run.folder / "sign-off.md").read_text()
    icon = {"GO": "✅", "PARTIAL GO": "🟡"}[verdict]
    assert text.startswith(f"## {icon} SIGN-OFF: {verdict} - {document['summary']}\n")
    for line in document["success_criteria"]:
        assert re.search(rf"^\| {re.escape(line['title'])} \| \S+ {line['status']}", text, re.M), line


def test_nothing_passed_is_never_go(run_suite, tmp_path):
    config = tmp_path / "no-alerting.toml"
    config.write_text("[alerting]\nenabled = false\n")
    run = run_suite("-m", "post_deploy and monitoring", "-k", "alert", "--postdeploy-target", "demo",
                    "--postdeploy-config", str(config))
    assert run.exit_code == 1, run.output
    assert run.signoff["verdict"] == "NO-GO" and not run.signoff["partial"]
    assert run.output.rstrip().splitlines()[-1] == "SIGN-OFF: NO-GO - 2 not applicable, 38 not selected, no criterion passed"


@EMBEDDED_ONLY
def test_monitoring_is_required_unless_the_application_declares_no_alerting(server, healthy_url, reference_app,
                                                                             run_suite, tmp_path):
    deployment = reference_app(healthy_url)
    env = {k: v for k, v in deployment.env.items() if k not in ("SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY")}
    run = run_suite("-m", "post_deploy", database_url=healthy_url, env=env, reports="no-route")
    routes = next(c for c in run.signoff["criteria"] if c["name"] == "test_alert_routes_configured")
    assert routes["label"] == "skipped (blocking)" and "[alerting] enabled = false" in routes["message"], routes
    assert "monitoring" in run.signoff["required_areas"]
    lines = {line["title"]: line for line in run.signoff["success_criteria"]}
    assert lines["Monitoring configured"]["status"] == "NO-GO" and run.signoff["verdict"] == "NO-GO"

    config = tmp_path / "declared.toml"
    config.write_text(server.backup_config + server.release_config + "\n[alerting]\nenabled = false\n")
    run = run_suite("-m", "post_deploy", "--postdeploy-config", str(config), database_url=healthy_url, env=env,
                    reports="declared")
    routes = next(c for c in run.signoff["criteria"] if c["name"] == "test_alert_routes_configured")
    assert routes["label"] == "not applicable", routes
    monitoring = {line["title"]: line for line in run.signoff["success_criteria"]}["Monitoring configured"]
    assert monitoring["status"] == "GO" and monitoring["declared"] == ["[alerting] enabled = false"], monitoring
    html = (run.folder / "sign-off.html").read_text()
    assert "declared in the configuration: [alerting] enabled = false" in html
    assert not [c for c in run.signoff["criteria"] if c["area"] == "monitoring" and c["label"] in ("failed", "skipped (blocking)")]
