"""Errors that end a command, each with the exit code DESIGN.md gives it.

0 success, 1 the job failed (the message says why), 2 bad usage or bad input. Code below the CLI raises these
with a message that names the problem (the file, the row, the URL, the NVML call) so that the CLI only has to
print it.
"""


class SlicewiseError(Exception):
    """A failure with a message meant for the person at the terminal."""

    exit_code = 1


class JobFailed(SlicewiseError):
    """The job could not be done: Prometheus unreachable, a delivery failed, NVML gone."""

    exit_code = 1


class BadInput(SlicewiseError):
    """The input is wrong: a corrupt history file, a broken config, an impossible MIG geometry."""

    exit_code = 2


class NotImplementedYet(JobFailed):
    """A command that exists in the CLI but is not built yet: it says so instead of pretending."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: not implemented yet")
