"""``place`` (memoised, bitmask search) lays out exactly what the plain check_geometry backtracking laid out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from slicewise import catalogue
from slicewise.catalogue import GpuModel, MigProfile, Placement, check_geometry, place
from slicewise.errors import BadInput


def _reference(gpu: GpuModel, names: list[str]) -> tuple[Placement, ...] | None:
    """The original algorithm: largest first, each start checked against everything placed so far."""
    wanted = sorted((gpu.profile(n) for n in names), key=lambda p: (-p.size, -p.compute_slices, p.name))
    placed: list[Placement] = []

    def fill(rest: list[MigProfile]) -> bool:
        if not rest:
            return True
        for start in rest[0].starts:
            try:
                check_geometry(gpu, [*placed, Placement(rest[0], start)])
            except BadInput:
                continue
            placed.append(Placement(rest[0], start))
            if fill(rest[1:]):
                return True
            placed.pop()
        return False

    return tuple(sorted(placed, key=lambda pl: pl.start)) if fill(wanted) else None


def _multisets(gpu: GpuModel) -> Iterator[list[str]]:
    """Every multiset of the model's profiles up to one memory slice more than the GPU has (the edge that fails)."""

    def grow(i: int, names: list[str], size: int) -> Iterator[list[str]]:
        if i == len(gpu.profiles):
            if names:
                yield names
            return
        prof, n = gpu.profiles[i], 0
        while size + n * prof.size <= gpu.memory_slices + 1:
            yield from grow(i + 1, names + [prof.name] * n, size + n * prof.size)
            n += 1

    yield from grow(0, [], 0)


def _shapes() -> list[GpuModel]:
    """One model per distinct placement geometry (most models share their generation's)."""
    seen: dict[object, GpuModel] = {}
    for gpu in catalogue.models():
        rules = tuple((p.size, p.compute_slices, p.starts, p.max_count, p.media_extensions) for p in gpu.profiles)
        seen.setdefault((gpu.memory_slices, gpu.compute_slices, rules), gpu)
    return list(seen.values())


@pytest.mark.parametrize("gpu", _shapes(), ids=lambda g: g.key)
def test_place_matches_the_reference_backtracking(gpu: GpuModel) -> None:
    for names in _multisets(gpu):
        expected = _reference(gpu, names)
        for order in (names, names[::-1]):  # the order asked in does not matter, memoised or not
            if expected is None:
                with pytest.raises(BadInput, match="do not fit"):
                    place(gpu, order)
            else:
                assert place(gpu, order) == expected, (gpu.key, names)
