"""flows.files.write_atomic: the whole new content or the old one, nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.files import JsonFileCache, write_atomic


def test_replaces_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "record.json"
    assert write_atomic(path, "first") == path
    write_atomic(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_a_failed_write_keeps_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    write_atomic(path, "old")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "half \ud800 written")  # a lone surrogate cannot be encoded
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_json_file_cache_is_a_mapping_of_files(tmp_path: Path) -> None:
    cache = JsonFileCache(tmp_path / "charts")
    assert len(cache) == 0 and "v1-abc" not in cache and cache.get("v1-abc") is None
    cache["v1-abc"] = '["<figure>"]'
    assert (tmp_path / "charts" / "v1-abc.json").read_text() == '["<figure>"]'
    assert dict(cache) == {"v1-abc": '["<figure>"]'}
    (tmp_path / "charts" / ".v2.json.123.tmp").write_text("half")  # an interrupted write
    (tmp_path / "charts" / "v2.json").mkdir()  # not a file: not an entry
    assert list(cache) == ["v1-abc"] and "v2" not in cache
    del cache["v1-abc"]
    assert len(cache) == 0
    with pytest.raises(KeyError):
        del cache["v1-abc"]
    with pytest.raises(ValueError, match="plain file name"):
        cache["../elsewhere"] = "[]"
