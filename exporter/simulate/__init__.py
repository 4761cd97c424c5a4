"""A simulated GPU fleet beneath pynvml: GPU models, MIG geometry, workloads over time, faults.

Public API (see docs/simulator.md):

- ``build_scenario(name, seed=0, gpus=None, clock=None, faults=None) -> Fleet``
- ``attach(fleet, node=None) -> Attachment``: the fake libnvidia-ml under pynvml for this process
- ``exporter.simulate.history.write_history(path, ...)``: a history file (Parquet or CSV) and its truth file; not
  imported here, so that the exporter (and its image) runs without pyarrow
- ``ManualClock`` / ``WallClock``, ``Faults`` / ``FaultKind``, ``Archetype``
"""

from exporter.simulate.archetypes import Archetype
from exporter.simulate.attach import Attachment, attach, attach_scenario, attached
from exporter.simulate.clock import ANCHOR, Clock, ManualClock, WallClock
from exporter.simulate.faults import FaultKind, Faults
from exporter.simulate.fleet import Fleet, Member, Node, RunningProcess, Workload
from exporter.simulate.scenarios import SCENARIOS, build_scenario, scenario_names

__all__ = [
    "ANCHOR",
    "SCENARIOS",
    "Archetype",
    "Attachment",
    "Clock",
    "FaultKind",
    "Faults",
    "Fleet",
    "ManualClock",
    "Member",
    "Node",
    "RunningProcess",
    "WallClock",
    "Workload",
    "attach",
    "attach_scenario",
    "attached",
    "build_scenario",
    "scenario_names",
]
