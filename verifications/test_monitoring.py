"""Step 6: the scheduled jobs report in: reconciliation and backup monitoring ran recently and cleanly."""

import pytest

from fixtures.jobs import heartbeat

pytestmark = [pytest.mark.post_deploy, pytest.mark.monitoring]


def test_job_heartbeats(catalog, settings, signoff):
    """Check reconciliation job ran successfully: the newest run is recent, succeeded and found no discrepancies."""
    m = settings.monitoring
    jobs = [("reconciliation", m.reconciliation_table)]
    if m.backup_monitor_table:
        jobs.append(("backup monitoring", m.backup_monitor_table))
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
    )
