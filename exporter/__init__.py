"""The exporter: NVML (through pynvml) -> Snapshot -> Prometheus metrics, one per GPU node.

``nvml`` reads the GPUs into a typed ``snapshot``; ``attribution`` names each process's workload; ``collector``
turns a snapshot into metric families; ``cli`` serves them. ``simulate`` stands in for libnvidia-ml beneath pynvml.
"""
