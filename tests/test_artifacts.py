"""The artifact store: keys confined to the root, writes atomic, any fsspec root."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from mlteam.core.artifacts import ArtifactStore, clean_key
from mlteam.core.errors import InvalidInput, NotFound


@pytest.fixture(params=["local", "memory", "s3"])
def store(request, tmp_path, monkeypatch) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "root"))
    if request.param == "memory":
        return ArtifactStore(f"memory://mlteam-{tmp_path.name}")
    # Object storage as a team runs it: credentials and endpoint from the standard AWS settings.
    s3 = request.getfixturevalue("s3_endpoint")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return ArtifactStore(f"s3://lake/{tmp_path.name}")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "", "a\\b", "a/\x00"])
def test_keys_cannot_leave_the_root(key: str) -> None:
    with pytest.raises(InvalidInput):
        clean_key(key)


def test_normalised_keys() -> None:
    assert clean_key("a//b/./c") == "a/b/c"


def test_put_list_open(store: ArtifactStore, tmp_path) -> None:
    store.put_bytes(b"hello", "runs/r1/artifacts/notes.txt")
    src = tmp_path / "m.bin"
    src.write_bytes(b"x" * 3_000_000)
    store.put_file(str(src), "runs/r1/artifacts/model/m.bin")
    listed = store.list("runs/r1/artifacts")
    assert listed == [
        {"path": "model", "is_dir": True, "size": 0},
        {"path": "notes.txt", "is_dir": False, "size": 5},
    ]
    assert store.read_bytes("runs/r1/artifacts/notes.txt") == b"hello"
    assert store.size("runs/r1/artifacts/model/m.bin") == 3_000_000
    with pytest.raises(NotFound):
        store.open("runs/r1/artifacts/missing")


def test_a_failed_write_leaves_nothing(store: ArtifactStore) -> None:
    with pytest.raises(RuntimeError), store.writer("d/half.parquet") as fh:
        fh.write(b"partial")
        raise RuntimeError("crash mid-write")
    assert not store.exists("d/half.parquet")
    assert store.list("d") == []


def test_a_file_written_at_a_local_path_appears_only_when_finished(store: ArtifactStore) -> None:
    with store.local_writer("predictions/d1/seg.parquet") as path:
        with open(path, "wb") as fh:
            fh.write(b"s" * 100_000)
        assert not store.exists("predictions/d1/seg.parquet")
    assert store.read_bytes("predictions/d1/seg.parquet") == b"s" * 100_000
    with pytest.raises(RuntimeError), store.local_writer("predictions/d1/half.parquet") as path:
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise RuntimeError("crash mid-write")
    assert not store.exists("predictions/d1/half.parquet")
    assert [e["path"] for e in store.list("predictions/d1")] == ["seg.parquet"]
    assert not Path(path).exists()  # no temporary file left behind either


def test_a_finished_file_moves_into_the_store(store: ArtifactStore, tmp_path) -> None:
    src = tmp_path / "v.parquet"
    src.write_bytes(b"p" * 1_000_000)
    store.move_file(str(src), "datasets/p1/abc.parquet")
    assert store.read_bytes("datasets/p1/abc.parquet") == b"p" * 1_000_000
    assert store.list("datasets/p1") == [
        {"path": "abc.parquet", "is_dir": False, "size": 1_000_000}
    ]
    if store.is_local:  # renamed, not copied: the same file, gone from where it was
        assert not src.exists()


def test_a_file_on_another_filesystem_is_copied_whole(tmp_path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem of its own")
    store = ArtifactStore(str(tmp_path / "root"))
    with tempfile.NamedTemporaryFile(dir=shm, delete=False) as fh:
        fh.write(b"q" * 2_000_000)
    try:
        store.move_file(fh.name, "datasets/p1/def.parquet")  # rename fails (EXDEV): copied
        assert store.read_bytes("datasets/p1/def.parquet") == b"q" * 2_000_000
        assert store.list("datasets/p1") == [
            {"path": "def.parquet", "is_dir": False, "size": 2_000_000}
        ]
    finally:
        Path(fh.name).unlink(missing_ok=True)
