import pytest

from edgekit.atomic import atomic_path, write_bytes


def test_success_renames(tmp_path):
    write_bytes(tmp_path / "a.bin", b"123")
    assert (tmp_path / "a.bin").read_bytes() == b"123"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_directory_mode_replaces(tmp_path):
    with atomic_path(tmp_path / "d", directory=True) as tmp:
        (tmp / "f").write_text("x")
    assert (tmp_path / "d" / "f").read_text() == "x"
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "d", directory=True) as tmp:
            (tmp / "g").write_text("y")
            raise ValueError
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["f"]


def test_written_files_get_normal_permissions(tmp_path):
    import os
    import stat

    from edgekit.atomic import atomic_path, write_text

    old = os.umask(0o022)
    try:
        f = write_text(tmp_path / "a.json", "{}")
        with atomic_path(tmp_path / "d", directory=True) as d:
            (d / "x").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
