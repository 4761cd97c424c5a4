#!/usr/bin/env bash
# Regenerate the hash-pinned locks the container image installs with `pip install --require-hashes`:
#   requirements.lock           slicewise's runtime dependencies ([project] dependencies in pyproject.toml): advisor
#   exporter-requirements.lock  exporter-requirements.in at the versions of requirements.lock: the exporter image
#   build-requirements.lock     the build backend (build-requirements.in), to build the slicewise wheel in the image
# Run it after changing dependencies (pyproject.toml or the .in files) and commit the locks. It needs uv
# (`pip install uv`) and PyPI. The hashes are PyPI's, for every file of each pinned release, so the same locks serve
# amd64 and arm64 images.
# Usage: deploy/docker/lock.sh [--upgrade]   (extra arguments go to `uv pip compile`)
set -euo pipefail
cd "$(dirname "$0")/../.."

uv="${UV:-$(command -v uv || echo .venv/bin/uv)}"
compile() {
  UV_CUSTOM_COMPILE_COMMAND="deploy/docker/lock.sh" "$uv" pip compile \
    --generate-hashes --python-version 3.11 --python-platform linux \
    --index-url https://pypi.org/simple --no-config --quiet "$@"
}
compile pyproject.toml -o deploy/docker/requirements.lock "$@"
compile deploy/docker/exporter-requirements.in --constraint deploy/docker/requirements.lock \
  -o deploy/docker/exporter-requirements.lock "$@"
compile deploy/docker/build-requirements.in -o deploy/docker/build-requirements.lock "$@"
echo "wrote deploy/docker/{requirements,exporter-requirements,build-requirements}.lock"
