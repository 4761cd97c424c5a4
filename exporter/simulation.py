"""``--simulate``: build a scenario's fleet and put its fake libnvidia-ml beneath pynvml for this process.

One exporter process serves one node, as on a real fleet; the node's simulated /proc, pod directory and container
names stand in for procfs, the API server and the Docker socket, so attribution runs the same code as on a node.
"""

from __future__ import annotations

from typing import Any

from slicewise.errors import BadInput


def attach_scenario(
    scenario: str,
    node_name: str | None,
    fleet: Any = None,
    *,
    driver: str | None = None,
    unprivileged: bool = False,
) -> tuple[Any, Any]:
    """Build ``scenario`` (or take ``fleet``) and attach its node ``node_name`` (default: its first node).

    ``driver`` / ``unprivileged`` give that node a driver profile and privileges (``exporter.simulate.drivers``);
    by default the node keeps its own (R550, privileged). Returns the ``Attachment`` (``detach()`` gives pynvml
    back; ``.fleet`` is the fleet, whose clock the reader follows) and the node.
    """
    from exporter.simulate import attach, build_scenario
    from exporter.simulate.drivers import use_driver

    if fleet is None:
        try:
            fleet = build_scenario(scenario)
        except BadInput as exc:
            raise BadInput(f"--simulate: {exc}") from exc
    try:
        node = fleet.node(node_name or None)
    except BadInput as exc:
        raise BadInput(f"--node-name: {exc}") from exc
    if driver is not None or unprivileged:
        try:
            use_driver(fleet, driver or node.driver.name, privileged=not unprivileged, node=node.name)
        except BadInput as exc:
            raise BadInput(f"--simulate.driver: {exc}") from exc
    return attach(fleet, node=node.name), node
