"""Step 6: configure monitoring: the scheduled jobs report in, alerts are routed and delivered."""

import pytest

from postdeploy.monitoring import alerting
from postdeploy.monitoring.jobs import heartbeat

pytestmark = [pytest.mark.post_deploy, pytest.mark.monitoring]


def test_job_heartbeats(catalog, settings, signoff):
    """Check reconciliation job ran successfully: the newest run is recent, succeeded and found no discrepancies."""
    m = settings.monitoring
    jobs = [(job, table) for job, table in (("reconciliation", m.reconciliation_table),
                                             ("backup monitoring", m.backup_monitor_table)) if table.strip()]
    if not jobs:
        signoff.not_applicable("a scheduled job table (reconciliation, backup monitoring)",
                               '[monitoring] reconciliation_table = ""')
    beats = [heartbeat(catalog, job, table, m) for job, table in jobs]
    bad = [b for b in beats if b.problems]
    signoff.check(
        not bad,
        wanted=f"for {', '.join(j for j, _ in jobs)}: newest run finished within {m.max_age_hours:g} h,"
        f" status {m.success_status!r}, 0 discrepancies",
        observed="; ".join(
            f"{b.job} ({b.table}): "
            + ("; ".join(b.problems) if b.problems else
               f"finished {b.newest.finished} UTC, {b.newest.age_hours} h ago, {b.newest.status},"
               f" {b.newest.discrepancies or 'n/a'} discrepancies")
            for b in beats
        ),
        evidence=[run for b in beats for run in b.recent],
        figures={
            f"{b.job} discrepancies": float(b.newest.discrepancies)
            for b in beats
            if b.newest and b.newest.discrepancies.lstrip("-").isdigit()
        },
    )


def test_alert_routes_configured(alerting_declared, alert_routes, signoff):
    """Configure alerting: a Slack webhook URL or a PagerDuty routing key is present and well-formed."""
    routes = alert_routes.describe()
    if not routes:
        # Blocking: a NO-GO where monitoring is a required area (signoff.required_areas).
        signoff.skip("no alert route configured: set SLACK_WEBHOOK_URL or PAGERDUTY_ROUTING_KEY, or declare"
                     " [alerting] enabled = false where the application has no alerting", blocking=True)
    problems = alert_routes.problems()
    signoff.check(
        bool(routes) and not problems,
        wanted="SLACK_WEBHOOK_URL or PAGERDUTY_ROUTING_KEY set, each well-formed",
        observed="; ".join(problems) if problems else ", ".join(routes),
        evidence=[{"route": r} for r in routes],
    )


def test_alert_delivery(alerting_declared, alert_routes, send_test_alert, settings, signoff):
    """Test alert delivery: a test message reaches Slack; a PagerDuty trigger is accepted and resolved."""
    if not send_test_alert:
        signoff.skip("delivery not tested: run with --postdeploy-send-test-alert to send a test alert", blocking=False)
    if not alert_routes.describe():
        signoff.skip("no alert route configured: nothing to send a test alert to", blocking=True)
    if alert_routes.problems():
        signoff.check(False, wanted="a well-formed alert route to send to", observed="none usable (see test_alert_routes_configured)")
    results = alerting.deliver(alert_routes, settings.alerting.timeout_s)
    failed = [r for r in results if not r.ok]
    signoff.check(
        not failed,
        wanted="Slack 200 'ok'; PagerDuty trigger and resolve 202 'success'",
        observed=", ".join(f"{r.step} {r.answer}" for r in results),
        evidence=results,
    )
