"""What one node's device-plugin config must say, and which planned GPUs can share a node.

The NVIDIA device plugin takes one config per node (``nvidia.com/device-plugin.config``), so every GPU on a node
lives by it. One config can say a lot at once: with ``migStrategy: mixed`` a node holds MIG GPUs (each profile its
own resource, ``nvidia.com/mig-<profile>``) and MIG-disabled whole GPUs (``nvidia.com/gpu``) side by side, and its
``sharing.timeSlicing.resources`` may time-slice ``nvidia.com/gpu`` and any ``nvidia.com/mig-<profile>``, one
replica count per resource name (GPU Operator docs, "Time-Slicing GPUs in Kubernetes"; k8s-device-plugin
``api/config/v1``). What cannot share a node:

- MPS: the plugin refuses MPS with ``migStrategy: mixed`` and MPS replicas are per node and per trust domain, so an
  MPS node holds only GPUs of one MPS setup (``cmd/nvidia-device-plugin/main.go``, ``validateFlags``);
- whole GPUs exclusive and whole GPUs time-sliced (both are ``nvidia.com/gpu``), or time-sliced with two replica
  counts; and time-sliced whole GPUs beside MIG ones (GFD would mark the node's product ``-SHARED``, which MIG
  pods on other MIG nodes do not select);
- a profile's slices time-sliced on one GPU and whole on another, or time-sliced two ways.

Packing GPUs of compatible setups onto one node is what keeps a plan on the nodes a fleet has: one setup per node
would spread eight A100s over five nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from advisor.model import Mode, PlannedGpu


@dataclass(frozen=True)
class NodeSetup:
    """The device-plugin config a node needs: an MPS setup, or ``mixed`` with its time-sliced resources."""

    mps: tuple[int, str] | None = None  # (replicas, trust domain) of an MPS node
    whole: str | None = None  # None, "exclusive", or "ts" for time-sliced whole GPUs
    whole_replicas: int | None = None  # time-slicing replicas of whole GPUs
    mig: bool = False
    mig_sharing: dict[str, int | None] = field(default_factory=dict)  # profile -> replicas (None: whole slices)

    @property
    def time_sliced(self) -> dict[str, int]:
        """Resource name -> replicas for the config's ``sharing.timeSlicing.resources``."""
        out = {f"nvidia.com/mig-{p}": k for p, k in sorted(self.mig_sharing.items()) if k}
        if self.whole == "ts" and self.whole_replicas:
            out = {"nvidia.com/gpu": self.whole_replicas, **out}
        return out


def gpu_setup(g: PlannedGpu) -> NodeSetup:
    if g.mode == Mode.MPS:
        return NodeSetup(mps=(g.replicas or 1, g.sharing_group or ""))
    if g.mode == Mode.MIG:
        return NodeSetup(mig=True, mig_sharing={i.profile: i.replicas for i in g.mig_instances})
    if g.mode == Mode.TIMESLICE:
        return NodeSetup(whole="ts", whole_replicas=g.replicas)
    return NodeSetup(whole="exclusive")


def merged(a: NodeSetup, b: NodeSetup) -> NodeSetup | None:
    """One setup serving both, or None where no single device-plugin config can."""
    if a.mps is not None or b.mps is not None:
        return a if a == b else None
    if a.whole and b.whole and (a.whole, a.whole_replicas) != (b.whole, b.whole_replicas):
        return None
    if (a.whole == "ts" and b.mig) or (b.whole == "ts" and a.mig):
        # time-sliced whole GPUs keep nodes of their own: GFD would mark the node's product -SHARED, which the
        # MIG pods' selectors on other MIG nodes do not carry
        return None
    sharing = dict(a.mig_sharing)
    for profile, replicas in b.mig_sharing.items():
        if profile in sharing and sharing[profile] != replicas:
            return None
        sharing[profile] = replicas
    return NodeSetup(
        whole=a.whole or b.whole,
        whole_replicas=a.whole_replicas or b.whole_replicas,
        mig=a.mig or b.mig,
        mig_sharing=sharing,
    )


def node_setup(gpus: list[PlannedGpu] | tuple[PlannedGpu, ...]) -> NodeSetup:
    """The setup of a node holding ``gpus``; ValueError where they cannot share one device-plugin config."""
    setup = gpu_setup(gpus[0])
    for g in gpus[1:]:
        both = merged(setup, gpu_setup(g))
        if both is None:
            raise ValueError(
                f"{g.mode.value} GPU {g.index} of {g.gpu_model} cannot share a node's device-plugin config with "
                f"{', '.join(sorted({x.mode.value for x in gpus if x is not g}))} GPUs"
            )
        setup = both
    return setup
