"""A simulated GPU fleet beneath pynvml: GPU models, MIG geometry, workloads over time, faults."""
