from pathlib import Path

import pytest

from slicewise.atomic import atomic_path, write_text


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    write_text(target, "last week")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of this wee")
        raise RuntimeError("renderer crashed")
    assert target.read_text() == "last week"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_successful_write_replaces_it(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.md"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.md"]
