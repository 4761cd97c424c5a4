"""Name the workload of every pid a scrape found on the GPUs.

procfs facts (cgroup, user, Slurm environment) are read once per pid and kept while that pid still has a GPU
context; each scrape reads only ``comm`` again, which tells a pid that has exited since NVML listed it (skipped and
counted, never published with half its labels) and a pid reused or re-exec'd by another program (read afresh).
The workload itself is resolved again every scrape, because the Kubernetes pod cache may have learned the pod.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.attribution.cgroup import parse_cgroup
from exporter.attribution.precedence import DEFAULT_ORDER, ContainerNames, ProcFacts, Step, resolve
from exporter.attribution.sources import PodDirectory, ProcSource
from exporter.snapshot import ProcessIdentity

log = logging.getLogger(__name__)


@dataclass
class Attribution:
    """One scrape's answer: identities by pid, and how many pids could not be read (they had exited)."""

    identities: dict[int, ProcessIdentity] = field(default_factory=dict)
    skipped: int = 0


class Attributor:
    def __init__(
        self,
        procs: ProcSource,
        pods: PodDirectory | None = None,
        containers: ContainerNames | None = None,
        order: tuple[Step, ...] = DEFAULT_ORDER,
    ) -> None:
        self.procs = procs
        self.pods = pods
        self.containers = containers
        self.order = order
        self._facts: dict[int, ProcFacts] = {}

    def identify(self, pids: Iterable[int]) -> Attribution:
        result = Attribution()
        facts_now: dict[int, ProcFacts] = {}
        for pid in pids:
            if pid in facts_now:
                continue
            try:
                facts = self._facts.get(pid)
                if facts is None or self.procs.comm(pid) != facts.comm:
                    facts = self._read_facts(pid)
            except ProcessLookupError:
                result.skipped += 1
                continue
            except OSError as exc:  # unreadable for another reason: skip, and say why in the debug log
                log.debug("cannot read /proc facts of pid %d: %s", pid, exc)
                result.skipped += 1
                continue
            facts_now[pid] = facts
            workload = resolve(facts, self.order, self.pods, self.containers)
            result.identities[pid] = ProcessIdentity(process=facts.comm, workload=workload)
        self._facts = facts_now  # pids gone from the GPUs are forgotten, so a reused pid is read afresh
        return result

    def _read_facts(self, pid: int) -> ProcFacts:
        cgroup = parse_cgroup(self.procs.cgroup(pid))
        comm = self.procs.comm(pid)
        user = self.procs.user(pid)
        job_id, job_name = cgroup.slurm_job_id, ""
        if Step.SLURM in self.order and not cgroup.pod_uid and not cgroup.container_id:
            env = self.procs.environ(pid)
            job_id = job_id or env.get("SLURM_JOB_ID", "")
            if job_id:
                job_name = env.get("SLURM_JOB_NAME", "")
        return ProcFacts(comm=comm, user=user, cgroup=cgroup, slurm_job_id=job_id, slurm_job_name=job_name)
