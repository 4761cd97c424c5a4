"""APScheduler with its persistent job store: a run missed while the scheduler was down happens once on restart,
a restart after the week's run sends nothing again, and the CLI stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

from advisor.deliver import Status
from advisor.schedule.config import load_config
from advisor.schedule.cycle import ledger_of
from advisor.schedule.jobs import REPORT_JOB, RETRY_JOB
from advisor.schedule.scheduler import JOBS_DB, PersistentScheduler, Scheduler
from slicewise.errors import JobFailed
from tests.advisor.schedule.conftest import Site

BERLIN = ZoneInfo("Europe/Berlin")
SLICEWISE = [sys.executable, "-c", "from slicewise.cli import main; main()"]


def wait_for(condition: Callable[[], bool], timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def set_next_run(state: Path, job_id: str, when: datetime) -> None:
    """Make the store say what it would after downtime across ``when``: the job's next run is in the past."""
    scheduler = PersistentScheduler(jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{state / JOBS_DB}")})
    scheduler.start(paused=True)
    try:
        scheduler.modify_job(job_id, next_run_time=when)
    finally:
        scheduler.shutdown(wait=False)


def next_monday_8(now: datetime) -> datetime:
    local = now.astimezone(BERLIN)
    days = (7 - local.weekday()) % 7
    candidate = (local + timedelta(days=days)).replace(hour=8, minute=0, second=0, microsecond=0)
    return candidate if candidate > local else candidate + timedelta(days=7)


def test_first_start_waits_for_the_next_monday_and_sends_nothing(site: Site) -> None:
    config_path = site.write()
    scheduler = Scheduler(load_config(config_path), config_path)
    scheduler.start()
    try:
        assert scheduler.next_run_time(REPORT_JOB) == next_monday_8(datetime.now(BERLIN))
        retry_at = scheduler.next_run_time(RETRY_JOB)
        assert retry_at is not None and retry_at > datetime.now(BERLIN)
        time.sleep(1.0)
    finally:
        scheduler.stop()
    assert not site.smtp.received and not site.slack.state.webhook_posts
    assert (site.tmp / "reports" / ".state" / JOBS_DB).is_file()


@pytest.mark.slow
def test_runs_missed_while_down_happen_once_on_restart_and_a_restart_mid_week_sends_nothing(site: Site) -> None:
    config_path = site.write()
    config = load_config(config_path)
    first = Scheduler(config, config_path)
    first.start()
    first.stop()
    # down for three weeks: three Mondays 08:00 passed while nothing ran
    missed = next_monday_8(datetime.now(BERLIN)) - timedelta(weeks=4)
    set_next_run(config.state, REPORT_JOB, missed)

    restarted = Scheduler(load_config(config_path), config_path)
    restarted.start()
    try:
        wait_for(lambda: len(site.slack.state.shared) == 2, what="the missed run's delivery")
        time.sleep(1.0)  # room for a second run, if coalescing failed
        assert restarted.next_run_time(REPORT_JOB) == next_monday_8(datetime.now(BERLIN))
    finally:
        restarted.stop()
    assert len(site.smtp.received) == 1
    assert len(site.slack.state.webhook_posts) == 1 and len(site.slack.state.messages) == 1
    # the report belongs to the latest missed Monday
    period = site.smtp.received[0].message["X-Slicewise-Period"]
    latest_monday = next_monday_8(datetime.now(BERLIN)) - timedelta(weeks=1)
    assert period == latest_monday.strftime("%Y-%m-%dT%H%M%z")
    assert {e.status for e in ledger_of(config).entries(period).values()} == {Status.SENT}

    # restarted again mid-week: the week's report is out, next run next Monday, nothing sent again
    again = Scheduler(load_config(config_path), config_path)
    again.start()
    try:
        time.sleep(1.5)
        assert again.next_run_time(REPORT_JOB) == next_monday_8(datetime.now(BERLIN))
    finally:
        again.stop()
    assert len(site.smtp.received) == 1 and len(site.slack.state.webhook_posts) == 1


def test_a_run_missed_by_more_than_the_grace_is_skipped(site: Site) -> None:
    config_path = site.write(schedule={"cron": "0 8 * * mon", "timezone": "Europe/Berlin", "misfire_grace": "1h"})
    config = load_config(config_path)
    s = Scheduler(config, config_path)
    s.start()
    s.stop()
    set_next_run(config.state, REPORT_JOB, datetime.now(BERLIN) - timedelta(days=2))
    s = Scheduler(config, config_path)
    s.start()
    try:
        wait_for(lambda: s.next_run_time(REPORT_JOB) == next_monday_8(datetime.now(BERLIN)), 20, "the skip")
        time.sleep(0.5)
    finally:
        s.stop()
    assert not site.smtp.received and not site.slack.state.webhook_posts


def test_an_unchanged_config_keeps_the_pending_run_and_a_new_cron_moves_it(site: Site) -> None:
    config_path = site.write()
    config = load_config(config_path)
    s = Scheduler(config, config_path)
    s.start()
    s.stop()
    pending = datetime.now(BERLIN) + timedelta(days=3, minutes=7)
    set_next_run(config.state, REPORT_JOB, pending)
    s = Scheduler(load_config(config_path), config_path)
    s.start()
    try:
        assert s.next_run_time(REPORT_JOB) == pending
    finally:
        s.stop()
    changed = site.write(schedule={"cron": "30 6 * * fri", "timezone": "Europe/Berlin"})
    s = Scheduler(load_config(changed), changed)
    s.start()
    try:
        moved = s.next_run_time(REPORT_JOB)
        assert moved is not None and (moved.weekday(), moved.hour, moved.minute) == (4, 6, 30)
    finally:
        s.stop()


def test_two_schedulers_cannot_share_a_state_directory(site: Site) -> None:
    config_path = site.write()
    config = load_config(config_path)
    one = Scheduler(config, config_path)
    one.start()
    try:
        with pytest.raises(JobFailed, match="another slicewise schedule"):
            Scheduler(config, config_path).start()
    finally:
        one.stop()


def test_the_command_serves_until_sigterm_and_exits_cleanly(site: Site) -> None:
    config_path = site.write()
    proc = subprocess.Popen(
        [*SLICEWISE, "schedule", "--config", str(config_path)],
        env=site.subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = site.tmp / "reports" / ".state" / "scheduler.lock"
        wait_for(lambda: (lock.is_file() and lock.read_text().strip() == str(proc.pid)) or proc.poll() is not None, 60)
        time.sleep(1.0)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "schedule started; next report at" in err
    assert "SIGTERM received" in err and "schedule stopped" in err
