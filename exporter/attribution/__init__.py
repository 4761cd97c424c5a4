"""Name the workload behind each pid: Kubernetes pod owner, container, Slurm job, systemd unit or user/command."""
