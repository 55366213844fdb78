import json
import os

import pytest

from arcsolver.atomic import atomic_write_json, atomic_write_text


def test_write_replaces_whole_file_with_ordinary_permissions(tmp_path):
    path = tmp_path / "sub" / "out.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"b": 2})
    assert json.loads(path.read_text()) == {"b": 2}
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]  # no temporary left behind


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")
    with pytest.raises(TypeError):
        atomic_write_json(path, {"x": object()})  # not serialisable: fails before any write
    assert path.read_text() == "old"
