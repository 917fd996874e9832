"""Step 7 and the post-deployment watch: backups automated, recent, kept 14+ days, restorable."""

from datetime import timedelta
from pathlib import Path

import pytest

from postdeploy.backup.checks import (
    ScheduleRow,
    final_backup,
    gaps,
    newest_first,
    restorable,
    schedule_shortfall,
    size,
    span,
    stamp,
)
from postdeploy.backup.restore import RestoreFailed, objective, restore_test

pytestmark = [pytest.mark.post_deploy, pytest.mark.backup]


def test_latest_backup_age(backups, database_now, signoff):
    """Verify backup age stays < 25 hours: the newest backup, against the database's clock."""
    inventory = backups.listed(signoff)
    limit = timedelta(hours=backups.settings.max_age_hours)
    newest = inventory.newest
    age = database_now - newest.finished if newest else None
    signoff.check(
        age is not None and age < limit,
        wanted=f"newest backup younger than {span(limit)} (clock: database now())",
        observed=(
            f"newest {newest.id} is {span(age)} old, finished {stamp(newest.finished)}; "
            f"database now() {stamp(database_now)}; {inventory.describe()}"
            if newest
            else f"no backup listed by {inventory.describe()}"
        ),
        evidence=[*newest_first(inventory, database_now)[:3], *({"note": n} for n in inventory.notes)],
        figures={"backup_age_hours": age.total_seconds() / 3600} if age is not None else None,
    )


def test_retention_coverage(backups, database_now, signoff):
    """Set retention period (14+ days): the oldest restorable backup, and the schedules, reach back 14 days."""
    inventory = backups.listed(signoff)
    wanted = timedelta(days=backups.settings.retention_days)
    kept = restorable(inventory, database_now)
    oldest = kept[0] if kept else None
    covered = database_now - min(b.finished for b in kept) if kept else timedelta(0)
    problems = []
    if covered < wanted:
        problems.append(f"oldest restorable backup is {span(covered)} old" if kept else "no restorable backup")
    if inventory.schedules is not None and (shortfall := schedule_shortfall(inventory.schedules, wanted)):
        problems.append(shortfall)
    observed = (
        f"{len(kept)} restorable backups, oldest {oldest.id} finished {stamp(oldest.finished)} ({span(covered)} ago)"
        if oldest
        else "no restorable backup"
    )
    if inventory.schedules is not None:
        longest = max((s.retention for s in inventory.schedules if s.retention), default=None)
        observed += f"; schedules keep up to {span(longest) if longest else 'nothing'}"
    signoff.check(
        not problems,
        wanted=f"restorable backups reaching back at least {wanted.days} days"
        + ("; a schedule keeping them that long" if inventory.schedules is not None else ""),
        observed="; ".join(problems) + f" ({observed})" if problems else observed,
        evidence=[ScheduleRow.of(s) for s in inventory.schedules or ()],
    )


def test_backups_automated(backups, database_now, signoff):
    """Backups automated: a backup schedule exists, or backups are never more than 25 hours apart."""
    inventory = backups.listed(signoff)
    if inventory.schedules is not None:
        signoff.check(
            bool(inventory.schedules),
            wanted="at least one backup schedule",
            observed=", ".join(f"{s.kind} ({s.cron})" for s in inventory.schedules) or "no backup schedule",
            evidence=[ScheduleRow.of(s) for s in inventory.schedules],
        )
        return
    window = timedelta(days=backups.settings.retention_days)
    limit = timedelta(hours=backups.settings.max_gap_hours)
    kept = restorable(inventory, database_now)
    found = gaps(kept, database_now, window=window, max_gap=limit)
    inside = [b for b in kept if b.finished >= database_now - window]
    signoff.check(
        len(kept) >= 2 and not found,
        wanted=f"backups at most {span(limit)} apart over the last {window.days} days",
        observed=f"{len(found)} gap(s) longer than {span(limit)}, the longest {max(g.gap for g in found)}"
        if found
        else f"{len(inside)} backups in the last {window.days} days, none more than {span(limit)} apart"
        if len(kept) >= 2
        else f"{len(kept)} backup(s): too few to show a schedule",
        evidence=found,
    )


def test_final_backup_before_deploy(backups, database_now, deploy_started, signoff):
    """Step 1 Final Backup: a backup finished shortly before the deploy started."""
    inventory = backups.listed(signoff)
    window = timedelta(hours=backups.settings.pre_deploy_window_hours)
    kept = restorable(inventory, database_now)
    final = final_backup(kept, deploy_started, window)
    before = [b for b in kept if b.finished <= deploy_started]
    signoff.check(
        final is not None,
        wanted=f"a backup finished within {span(window)} before the deploy started ({stamp(deploy_started)})",
        observed=f"{final.id} finished {stamp(final.finished)}, {span(deploy_started - final.finished)} before"
        if final
        else "none; newest before the deploy: "
        + (f"{before[-1].id} finished {span(deploy_started - before[-1].finished)} before" if before else "none"),
        evidence=newest_first(inventory, database_now)[:3],
    )


@pytest.mark.slow
def test_restore_latest_backup(backups, restore_requested, scratch_server, rehearsal, db, settings, signoff):
    """Verify backup/restore procedures: the newest dump restores, with every table and its rows, within the RTO."""
    rto = backups.settings.max_restore_minutes
    if rehearsal is not None:  # the rehearsal restored the newest dump already: that restore is signed off
        timing = rehearsal.restore
        signoff.check(
            timing.within(rto),
            wanted=f"the newest dump restores on a throwaway server{objective(rto)}",
            observed=f"for the rehearsal, {timing.describe()}",
            figures=timing.figures(rto),
        )
        return
    if not restore_requested:
        signoff.skip("restore test not requested (--postdeploy-restore-test or backup.restore_test = true)", blocking=False)
    inventory = backups.listed(signoff)
    if not inventory.fetchable:
        signoff.skip(inventory.not_fetchable_reason, blocking=False)
    newest = signoff.require(inventory.newest, f"a dump from {inventory.describe()}")
    wanted = (
        f"restores into a scratch database ({scratch_server.into} server){objective(rto)};"
        " every target table present, target rows >= restored rows"
    )
    try:
        result = restore_test(
            newest.id,
            Path(newest.path),
            db,
            settings.database.schemas,
            timeout_s=backups.settings.restore_timeout_s,
            into=scratch_server.into,
            image=scratch_server.image,
        )
    except RestoreFailed as err:
        result, failure = None, str(err)
    if result is None:
        signoff.check(False, wanted=wanted, observed=f"{newest.id} did not restore: {failure}")
    problems = result.problems()
    timing = result.timing
    signoff.check(
        not problems and timing.within(rto),
        wanted=wanted,
        observed=f"{newest.id} restored into {result.server} in {timing.seconds:.1f} s"
        f" ({timing.seconds / 60:.3g} min; dump {size(timing.dump_bytes)}, {timing.rows} rows); "
        + (
            f"{len(problems)} table(s) short: " + ", ".join(f"{p.table} {p.verdict}" for p in problems)
            if problems
            else f"{len(result.backup_tables)} tables, {timing.rows} rows, as the target"
        ),
        evidence=problems or result.comparison(),
        figures=timing.figures(rto),
    )
