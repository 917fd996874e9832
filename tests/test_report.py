"""The sign-off page, its Markdown and the run history, read as a release manager reads them:
the page through headless Chromium's DOM."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from postdeploy.report import markdown, page
from postdeploy.report.model import Criterion, RunInfo, SignoffRun
from postdeploy.signoff.evidence import Outcome
from postdeploy.signoff.settings import AREAS
from postdeploy.signoff.checklist import SUCCESS_CRITERIA
from postdeploy.signoff.verdict import NOT_APPLICABLE, NOT_CHECKED, NOT_SELECTED, PARTIAL_GO, Result, decide

ROOT = Path(__file__).resolve().parent.parent
EIGHT = [
    "All migrations completed successfully",
    "Zero data loss",
    "Application functioning normally",
    "Tenant isolation verified",
    "Balance queries working",
    "Monitoring configured",
    "Backups automated",
    "No critical errors in logs",
]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")


def dom(html: Path, profile: Path) -> str:
    """The page as Chromium built it."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", "--dump-dom", html.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    return done.stdout


def success_criteria(document: str) -> list[tuple[str, str]]:
    titles = re.findall(r'<td class="sc-title">([^<]+)<br>', document)
    statuses = re.findall(r'<span class="status">([^<]+)</span>', document)
    return list(zip(titles, statuses, strict=True))


def folders(reports: Path) -> list[Path]:
    return sorted(p for p in reports.iterdir() if p.is_dir())


def no_machine_path(text: str, *paths: Path) -> None:
    assert "('/" not in text, "a raw skip tuple"
    for path in (ROOT, *paths):
        assert str(path) not in text, f"{path} appears"


@needs_chromium
def test_go_page_opens_with_the_verdict_and_the_eight_success_criteria(run_suite, tmp_path):
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", "--postdeploy-release", "2024.03.01")
    assert run.exit_code == 0, run.output
    document = dom(run.folder / "sign-off.html", tmp_path / "chromium")
    banner = re.search(r'<section id="verdict" class="go">\s*<h1>(.*?)</h1>\s*<span class="summary">(.*?)</span>', document)
    assert banner and banner.groups() == ("SIGN-OFF: GO", run.signoff["summary"])
    assert success_criteria(document) == [(title, "GO") for title in EIGHT]
    # Skips show their reason only; the target facts and durations stay.
    assert "restore test not requested" in document and "Skipped: " not in document
    assert run.signoff["server_version"] in document and "2024.03.01" in document
    assert re.search(r'<td class="num">\d+\.\d\d s</td>', document)
    # Self-contained: no script, no stylesheet or image to fetch.
    assert not re.search(r"<script|<link|<img|src=|url\(", document)
    for name in ("sign-off.html", "sign-off.md", "sign-off.json", "junit.xml"):
        no_machine_path((run.folder / name).read_text(), tmp_path)
    no_machine_path(document, tmp_path)
    skipped = [e for e in ET.parse(run.folder / "junit.xml").getroot().iter("skipped")]
    assert skipped and all(e.text.startswith("verifications/") for e in skipped)


@needs_chromium
def test_no_go_page_history_and_markdown(run_suite, tmp_path):
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    bad = run_suite("-m", "post_deploy", "--postdeploy-target", "demo",
                    env={"POSTDEPLOY_APP_FAULT": "log_errors", "GITHUB_STEP_SUMMARY": str(summary)})
    assert bad.exit_code == 1, bad.output
    good = run_suite("-m", "post_deploy", "--postdeploy-target", "demo")
    assert good.exit_code == 0, good.output
    reports = bad.report_dir
    no_go, go = folders(reports)

    document = dom(no_go / "sign-off.html", tmp_path / "chromium")
    assert '<section id="verdict" class="nogo">' in document and "<h1>SIGN-OFF: NO-GO</h1>" in document
    lines = success_criteria(document)
    assert [t for t, _ in lines] == EIGHT
    assert dict(lines)["No critical errors in logs"] == "NO-GO"
    assert dict(lines)["Application functioning normally"] == "GO", "the log scan is its own success criterion"
    # Evidence appears once: the failure message repeats wanted/observed and the rows; it is not shown.
    failed = json.loads((no_go / "sign-off.json").read_text())
    (log,) = [c for c in failed["criteria"] if c["outcome"] == "failed"]
    first_line = log["evidence"][0]["line"]
    assert document.count(first_line.split(" ", 1)[1][:40]) == 1
    no_machine_path(document, tmp_path)

    text = (no_go / "sign-off.md").read_text()
    assert text.startswith(f"## ❌ SIGN-OFF: NO-GO - {failed['summary']}\n")
    rows = re.findall(r"^\| (.+?) \| (?:✅|❌|➖|⚠️) (GO|NO-GO|not applicable|not checked) \|", text, re.M)
    assert [r[0] for r in rows] == EIGHT and dict(rows)["No critical errors in logs"] == "NO-GO"
    assert "### Failed" in text and "`test_no_critical_errors_in_logs` (failed)" in text
    assert log["wanted"].split(" since ")[0].replace("|", "\\|") in text
    assert summary.read_text() == "earlier step\n" + text + "\n", "appended to $GITHUB_STEP_SUMMARY"

    with sqlite3.connect(reports / "history.sqlite") as conn:
        runs = conn.execute("SELECT folder, verdict FROM run ORDER BY id").fetchall()
        figures = {name for (name,) in conn.execute("SELECT DISTINCT name FROM figure")}
        outcomes = conn.execute("SELECT count(*) FROM criterion").fetchone()[0]
    assert runs == [(no_go.name, "NO-GO"), (go.name, "GO")]
    assert {"backup_age_hours", "drifted_keys", "reconciliation discrepancies", "rows StockMovement"} <= figures
    assert outcomes == len(failed["criteria"]) * 2
    history = (reports / "history.html").read_text()
    charts = re.findall(r'<figure class="chart" id="chart-([a-z-]+)">\s*<figcaption>[^<]+</figcaption>\s*<svg', history)
    assert len(charts) >= 5 and {"verdicts", "backup-age", "restore-time", "reconciliation", "durations"} <= set(charts)
    assert "<script" not in history and history.count(">NO-GO<") >= 1
    # the charts fetch nothing: their only URLs are the SVG and XLink namespaces
    urls = {u for svg in re.findall(r"<svg.*?</svg>", history, re.S) for u in re.findall(r"https?://[^\s\"'<>)]+", svg)}
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    no_machine_path(history, tmp_path)


def _result(name: str, area: str, outcome: str, *, blocking: bool = True, not_applicable: str = "") -> Result:
    record = Outcome(area, f"item of {name}", "wanted", f"observed {outcome}", [], blocking, not_applicable)
    return Result(f"verifications/test_{area}.py::{name}", outcome, "", record)


def _run(results: list[Result], required: list[str], folder: str = "demo-x", minute: int = 0) -> SignoffRun:
    """A run's report as the writer builds it: the verdict decides, the criteria carry its labels."""
    verdict = decide(results, set(required), [])
    info = RunInfo("demo", "inventory", "PostgreSQL 18", "", "", "ops", f"2026-03-14 09:{minute:02d}:00",
                   f"2026-03-14 09:{minute:02d}:30")
    return SignoffRun(info, verdict, [Criterion.of(r, 0.01, verdict) for r in results], required, [], folder)


def test_statuses_of_the_success_criteria():
    results = [
        _result("test_no_failed_migration", "migration", "passed"),
        _result("test_balance_table_and_trigger", "balance", NOT_APPLICABLE, blocking=False,
                not_applicable='[balance] trigger = ""'),
        _result("test_liveness_endpoint", "health", "passed"),
        _result("test_no_critical_errors_in_logs", "health", "skipped"),  # blocking, health required
        _result("test_alert_routes_configured", "monitoring", "skipped"),  # blocking, but monitoring not required
        _result("test_latest_backup_age", "backup", "failed"),
        _result("test_tenant_columns_indexed", "tenancy", NOT_SELECTED),  # left out by -m
    ]
    required = ["migration", "balance", "health", "backup"]
    run = _run(results, required)
    assert [(line.title, line.status) for line in run.lines] == [
        ("All migrations completed successfully", "GO"),
        ("Zero data loss", NOT_SELECTED),
        ("Application functioning normally", "GO"),
        ("Tenant isolation verified", NOT_SELECTED),
        ("Balance queries working", NOT_APPLICABLE),
        ("Monitoring configured", NOT_CHECKED),
        ("Backups automated", "NO-GO"),
        ("No critical errors in logs", "NO-GO"),
    ]
    # One label per criterion, the verdict's: the monitoring skip is optional where monitoring is not required.
    assert [c.shown_outcome for c in run.criteria] == ["passed", NOT_APPLICABLE, "passed", "skipped (blocking)",
                                                        "skipped (optional)", "failed", NOT_SELECTED]
    html, text = page.render(run), markdown.render(run)
    assert '<span class="status">not applicable</span>' in html and "➖ not applicable" in text
    assert "observed not applicable" in html and "declared in the configuration: [balance] trigger = &#34;&#34;" in html
    assert '<span class="status">not selected</span>' in html and "⏭️ not selected" in text
    assert run.document()["criteria"][1]["not_applicable"] == '[balance] trigger = ""'
    assert [c.name for c in run.failed] == ["test_no_critical_errors_in_logs", "test_latest_backup_age"]
    assert run.verdict.verdict == "NO-GO" and not run.document()["partial"]


def test_a_go_needs_every_success_criterion_and_a_passed_criterion():
    passed = [_result(f"test_{area}_ok", area, "passed") for area in AREAS]
    passed.append(_result("test_no_critical_errors_in_logs", "health", "passed"))
    assert _run(passed, list(AREAS)).verdict.verdict == "GO"
    # Every criterion of two success criteria left out by -m: never GO, and the summary names them.
    narrowed = [r for r in passed if r.record.area not in ("backup", "data")]
    for r in passed:
        if r.record.area in ("backup", "data"):
            narrowed.append(Result(r.nodeid, NOT_SELECTED, "", r.record))
    run = _run(narrowed, list(AREAS))
    assert run.verdict.verdict == PARTIAL_GO and run.document()["partial"] is True
    assert run.verdict.summary.startswith("not selected: Zero data loss, Backups automated; ")
    assert run.document()["not_selected"] == ["Zero data loss", "Backups automated"]
    assert '<section id="verdict" class="partial">' in page.render(run)
    # A success criterion only partly selected: still a partial GO, naming it.
    some = passed + [_result("test_backup_more", "backup", NOT_SELECTED)]
    assert _run(some, list(AREAS)).verdict.summary.startswith("partly selected: Backups automated (1 of 2 criteria); ")
    # Not checked: ran, but only optional skips.
    optional = [r for r in passed if r.record.area != "monitoring"]
    optional.append(_result("test_alert_delivery", "monitoring", "skipped", blocking=False))
    assert _run(optional, list(AREAS)).verdict.verdict == PARTIAL_GO
    # Nothing passed: NO-GO, whatever else.
    nothing = [_result("test_alert_delivery", "monitoring", "skipped", blocking=False),
               _result("test_job_heartbeats", "monitoring", NOT_APPLICABLE, not_applicable="[monitoring] x")]
    run = _run(nothing, list(AREAS))
    assert run.verdict.verdict == "NO-GO" and "no criterion passed" in run.verdict.summary


def test_one_declared_table_maps_every_area():
    assert [s.title for s in SUCCESS_CRITERIA] == EIGHT
    assert {s.area for s in SUCCESS_CRITERIA if s.area} == set(AREAS)
    named = [n for s in SUCCESS_CRITERIA for n in s.names]
    assert named == ["test_no_critical_errors_in_logs"]
    assert "def test_no_critical_errors_in_logs(" in (ROOT / "verifications" / "test_health.py").read_text()


@needs_chromium
def test_not_applicable_shows_on_the_page_in_markdown_and_history(run_suite, tmp_path):
    config = tmp_path / "absent.toml"
    config.write_text("[logs]\nenabled = false\n\n[alerting]\nenabled = false\n")
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", "--postdeploy-config", str(config))
    assert run.exit_code == 0, run.output
    document = dom(run.folder / "sign-off.html", tmp_path / "chromium")
    lines = dict(success_criteria(document))
    assert lines["No critical errors in logs"] == "not applicable"
    assert lines["Monitoring configured"] == "GO"  # the heartbeat passed; alerting declared absent
    assert "not applicable" in re.search(r'<section id="verdict".*?</section>', document, re.S).group()
    matrix = re.search(r'<table class="matrix" id="matrix">.*?</table>', document, re.S).group()
    assert re.search(r'#area-monitoring">monitoring</a></td>\s*<td[^>]*>1</td>(\s*<td[^>]*>0</td>){3}\s*<td[^>]*>2</td>', matrix)
    assert "| No critical errors in logs | ➖ not applicable |" in (run.folder / "sign-off.md").read_text()
    with sqlite3.connect(run.report_dir / "history.sqlite") as conn:
        outcomes = dict(conn.execute("SELECT name, outcome FROM criterion"))
    assert outcomes["test_no_critical_errors_in_logs"] == NOT_APPLICABLE


def test_history_charts_the_last_runs_and_lists_them_all(tmp_path):
    from postdeploy.report import charts, history

    results = [_result("test_no_failed_migration", "migration", "passed")]
    for n in range(charts.CHARTED + 3):
        run = _run(results, ["migration"], f"demo-{n:02d}", n)
        history.record(tmp_path, run)
    charts.write_page(tmp_path)
    page = (tmp_path / charts.PAGE).read_text()
    assert f"Sign-off history: {charts.CHARTED + 3} runs" in page and page.count('href="demo-') == charts.CHARTED + 3
    assert f"The charts show the last {charts.CHARTED} runs." in page
    verdicts = page[page.index('id="chart-verdicts"'):page.index('id="chart-backup-age"')]
    assert "09:32" in verdicts and "09:03" in verdicts and "09:02" not in verdicts  # the three oldest left out
