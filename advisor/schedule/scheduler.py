"""APScheduler 3 with a persistent job store (SQLAlchemy on SQLite in the state directory).

The store keeps each job's next run time across restarts. When the scheduler comes back after being down over a
scheduled time, that time is in the past: the job runs once on start (``coalesce``: three missed Mondays are one
run) if it is no later than ``misfire_grace``, and then waits for the next fire time. The jobs are reconciled with
the config at start without disturbing a pending run: a job is added only if missing, and rescheduled (which moves
its next run) only when the cron line or time zone changed. ``replace_existing`` would recompute the next run
from now and silently drop the missed one.

A lock file keeps two schedulers off one state directory: APScheduler 3 cannot share a job store, and two
schedulers would each run every job.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from advisor.schedule.config import ScheduleConfig
from advisor.schedule.jobs import REPORT_JOB, RETRY_JOB
from advisor.schedule.period import trigger
from slicewise.errors import BadInput, JobFailed

log = logging.getLogger(__name__)

JOBS_DB = "jobs.sqlite"
LOCK = "scheduler.lock"


class PersistentScheduler(BackgroundScheduler):
    """A BackgroundScheduler that does nothing once shut down.

    APScheduler 3.11's loop wakes at shutdown and processes due jobs once more; with its executor already shut
    down the submission fails ("cannot schedule new futures after shutdown", agronholm/apscheduler#285, #985) and
    the store's next run time moves past the due run anyway: a run due at the moment of a restart would be lost.
    """

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        result: float | None = super()._process_jobs()
        return result


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: str  # textual reference: what the store keeps
    trigger: BaseTrigger
    misfire_grace_seconds: int
    name: str


def job_specs(config: ScheduleConfig) -> list[JobSpec]:
    timing = config.schedule
    return [
        JobSpec(
            REPORT_JOB,
            "advisor.schedule.jobs:weekly_report",
            trigger(timing.cron, timing.timezone),
            int(timing.misfire_grace.total_seconds()),
            "slicewise report",
        ),
        JobSpec(
            RETRY_JOB,
            "advisor.schedule.jobs:retry_deliveries",
            IntervalTrigger(seconds=int(timing.retry_every.total_seconds()), timezone=timing.timezone),
            int(timing.retry_every.total_seconds()),
            "slicewise delivery retries",
        ),
    ]


class Scheduler:
    """The weekly job's scheduler over ``config.state``; ``start`` runs what was missed, ``stop`` waits for a run."""

    def __init__(self, config: ScheduleConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path.resolve()
        self._lock_file: IO[str] | None = None
        self._scheduler: PersistentScheduler | None = None

    def _lock(self) -> None:
        state = self.config.state
        try:
            state.mkdir(parents=True, exist_ok=True)
            handle = (state / LOCK).open("a+")
        except OSError as exc:
            raise BadInput(f"{state}: cannot use the state directory: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise JobFailed(f"{state}: another slicewise schedule (pid {owner}) uses this state directory") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def start(self) -> None:
        self._lock()
        url = f"sqlite:///{(self.config.state / JOBS_DB).resolve()}"
        scheduler = PersistentScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=url)},
            executors={"default": ThreadPoolExecutor(max_workers=1)},  # one cycle at a time
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=self.config.schedule.timezone,
        )
        try:
            scheduler.start(paused=True)  # nothing runs until the jobs match the config
            self._scheduler = scheduler
            self._reconcile()
        except Exception as exc:
            self.stop()
            raise JobFailed(f"{self.config.state / JOBS_DB}: cannot use the job store: {exc}") from exc
        due = self.next_run_time(REPORT_JOB)
        if due is not None and due <= datetime.now(due.tzinfo):
            log.info("schedule started; the report due at %s was missed while stopped: it runs now", due)
        else:
            log.info("schedule started; next report at %s", due)
        scheduler.resume()

    def _reconcile(self) -> None:
        assert self._scheduler is not None
        args = [str(self.config_path)]
        for spec in job_specs(self.config):
            job = self._scheduler.get_job(spec.id)
            if job is None:
                self._scheduler.add_job(
                    spec.func,
                    spec.trigger,
                    id=spec.id,
                    name=spec.name,
                    args=args,
                    misfire_grace_time=spec.misfire_grace_seconds,
                    coalesce=True,
                    max_instances=1,
                )
                continue
            if repr(job.trigger) != repr(spec.trigger):
                log.info("%s: the schedule changed to %s; its next run moves", spec.id, spec.trigger)
                self._scheduler.reschedule_job(spec.id, trigger=spec.trigger)
            if list(job.args) != args or job.misfire_grace_time != spec.misfire_grace_seconds:
                self._scheduler.modify_job(spec.id, args=args, misfire_grace_time=spec.misfire_grace_seconds)

    def next_run_time(self, job_id: str) -> datetime | None:
        assert self._scheduler is not None
        job = self._scheduler.get_job(job_id)
        return job.next_run_time if job is not None else None

    def stop(self) -> None:
        """Stop taking new runs and wait for one in progress (a half-sent report is worse than a late exit)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self._scheduler = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def serve(config: ScheduleConfig, config_path: Path, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or ``stop`` is set), then shut down cleanly."""
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: stopping after any run in progress", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    scheduler = Scheduler(config, config_path)
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.stop()
        log.info("schedule stopped")
