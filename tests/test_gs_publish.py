"""Putting a version folder in place on object storage (emnist_idx/_prepare/object_publish.py) and
the lock's holder record (object_lock.Holder): the parts that need no store, on local files through
the same epath calls (the emulator runs are in test_object_locking.py)."""

from __future__ import annotations

import subprocess

from etils import epath

from emnist_idx._prepare import locking, object_publish
from emnist_idx._prepare.object_lock import Holder

_FILES = ["dataset_info.json", "emnist_idx-test.tfrecord-00000-of-00001", "features.json",
          "emnist_idx-train.tfrecord-00000-of-00001", "metadata.json"]


def _folder(root, names) -> epath.Path:
    folder = epath.Path(root)
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text(name)
    return folder


def test_publish_copies_every_file_and_the_marks_last(tmp_path, monkeypatch) -> None:
    source, target = _folder(tmp_path / "incomplete.ABC123_1.0.0", _FILES), tmp_path / "1.0.0"
    copied = []
    copy = epath.gpath.PosixGPath.copy

    def recording_copy(self, destination, overwrite=False):
        copied.append(self.name)
        return copy(self, destination, overwrite=overwrite)

    monkeypatch.setattr(epath.gpath.PosixGPath, "copy", recording_copy)
    object_publish.publish(source, epath.Path(target))
    assert copied[-2:] == ["features.json", "dataset_info.json"]
    assert sorted(copied) == sorted(_FILES)
    assert {path.name: path.read_text() for path in target.iterdir()} == {n: n for n in _FILES}


def test_an_unmarked_version_folder_is_removed_and_a_marked_one_kept(tmp_path) -> None:
    half = _folder(tmp_path / "half" / "1.0.0", _FILES[1:])  # no dataset_info.json
    whole = _folder(tmp_path / "whole" / "1.0.0", _FILES)
    assert object_publish.remove_unmarked(half) and not half.exists()
    assert not object_publish.remove_unmarked(whole) and len(list(whole.iterdir())) == len(_FILES)
    assert not object_publish.remove_unmarked(tmp_path / "absent" / "1.0.0")


def test_a_holder_is_dead_here_only_when_its_process_on_this_host_is_gone() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = Holder.me()
    assert Holder(me.host, gone.pid, me.since).is_dead_here()
    assert not Holder("another-host", gone.pid, me.since).is_dead_here()
    assert not me.is_dead_here()


def test_leftovers_on_object_storage_are_removed_only_under_the_lock() -> None:
    """Unlocked (no fsspec backend), other prepares' incomplete.* folders may be live: untouched,
    and no store is even asked (this URL's bucket does not exist anywhere)."""
    assert locking.remove_dead_temporaries("gs://no-such-bucket-emnist-idx/tfds/x/1.0.0") == []
