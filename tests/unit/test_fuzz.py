"""Property-based fuzzing (Hypothesis) of what comes from outside: audio files (random bytes, truncated and mutated
real files), pipeline.yaml and profiles, home files. The property: a coded AssistantError or a correct result, never
another exception. Bounded (max_examples) so the unit tier stays fast; FUZZ_EXAMPLES multiplies them for a long run.
Typed text through the runner with the real NLU is in tests/integration/test_fuzz_text.py.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant import audio as audio_io
from assistant.config import DEFAULT_HOME, DEFAULT_PIPELINE, Settings, load_settings
from assistant.errors import AssistantError

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
FUZZ = settings(
    max_examples=int(60 * SCALE),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COUNTS: dict[str, int] = {}


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    print("\nfuzz cases run: " + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))


def _encode(fmt: str, subtype: str, rate: int, channels: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


REAL_FILES = [
    _encode("WAV", "PCM_16", 16000, 1, 0.5),
    _encode("WAV", "PCM_24", 44100, 2, 0.3),
    _encode("WAV", "FLOAT", 8000, 1, 0.4),
    _encode("FLAC", "PCM_16", 48000, 2, 0.3),
    _encode("OGG", "VORBIS", 22050, 1, 0.5),
    _encode("WAV", "PCM_U8", 11025, 1, 0.3),
]


def _decode(content: bytes, suffix: str = ".wav") -> list[np.ndarray] | None:
    """Decode like replay does; None when it is refused with a coded error."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"clip{suffix}"
        path.write_bytes(content)
        try:
            audio_io.check_decodable(path)
            frames = list(audio_io.stream_file(path))
        except AssistantError as err:
            assert err.code.startswith("audio-") and str(path) in err.message
            return None
    for f in frames:  # a correct result: 80 ms int16 frames at 16 kHz
        assert f.dtype == np.int16 and f.shape == (audio_io.FRAME_SAMPLES,)
    return frames


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([".wav", ".flac", ".mp3", ".ogg", ""]))
def test_random_bytes_decode_or_give_a_coded_error(content, suffix):
    _count("audio random bytes")
    _decode(content, suffix)


@FUZZ
@given(st.sampled_from(range(len(REAL_FILES))), st.data())
def test_truncated_real_files_decode_or_give_a_coded_error(i, data):
    _count("audio truncated")
    content = REAL_FILES[i]
    cut = data.draw(st.integers(0, len(content)))
    _decode(content[:cut])


@FUZZ
@given(
    st.sampled_from(range(len(REAL_FILES))),
    st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_odd_headers_decode_or_give_a_coded_error(i, edits):
    """Bytes of the header (sizes, rates, channel counts, format codes) set to arbitrary values."""
    _count("audio odd headers")
    content = bytearray(REAL_FILES[i])
    for pos, value in edits:
        content[pos] = value
    _decode(bytes(content))


def test_intact_files_decode_to_the_right_length():
    for content in REAL_FILES:
        frames = _decode(content)
        assert frames is not None and len(frames) >= 3


# -- pipeline.yaml and profiles ---------------------------------------------------------------------------------
PIPELINE = yaml.safe_load(DEFAULT_PIPELINE.read_text())
HOME = yaml.safe_load(DEFAULT_HOME.read_text())
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw, base):
    """The real file with a few values replaced, keys deleted or added: deep, plausible, mostly wrong."""
    doc = copy.deepcopy(base)
    paths = list(_paths(doc))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            op = draw(st.sampled_from(["set", "delete", "add"]))
            if op == "set":
                parent[path[-1]] = draw(SCALARS)
            elif op == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=10))] = draw(SCALARS)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit removed or replaced this path
    return doc


def _write(d: str, name: str, text: str) -> Path:
    path = Path(d) / name
    path.write_text(text, encoding="utf-8")
    return path


@FUZZ
@given(mutated(PIPELINE))
def test_mutated_pipeline_yaml_loads_or_gives_a_coded_error(doc):
    _count("pipeline.yaml mutated")
    with tempfile.TemporaryDirectory() as d:
        try:
            s = load_settings(_write(d, "pipeline.yaml", yaml.safe_dump(doc)))
        except AssistantError as err:
            assert err.code.startswith("config-") and "pipeline.yaml" in err.message
            return
    assert isinstance(s, Settings)


@FUZZ
@given(st.text(max_size=300))
def test_any_text_as_pipeline_yaml_or_profile(text):
    _count("pipeline.yaml/profile text")
    with tempfile.TemporaryDirectory() as d:
        path = _write(d, "p.yaml", text)
        for args in ((path,), (DEFAULT_PIPELINE, path)):
            try:
                assert isinstance(load_settings(*args), Settings)
            except AssistantError as err:
                assert err.code.startswith("config-")


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from([*PIPELINE.keys(), "profile", "extra"]),
        st.one_of(SCALARS, st.dictionaries(st.text(max_size=12), SCALARS, max_size=3)),
        max_size=4,
    )
)
def test_random_profiles_over_the_real_pipeline(profile):
    _count("profile overrides")
    with tempfile.TemporaryDirectory() as d:
        try:
            s = load_settings(DEFAULT_PIPELINE, _write(d, "prof.yaml", yaml.safe_dump(profile)))
        except AssistantError as err:  # a bad `stages` names the files it came from
            assert err.code.startswith("config-") and ("prof.yaml" in err.message or "pipeline.yaml" in err.message)
            return
    assert isinstance(s, Settings)


def test_a_bad_stages_list_in_a_profile_names_the_profile(tmp_path):
    prof = _write(str(tmp_path), "prof.yaml", "stages: []\n")
    with pytest.raises(AssistantError) as err:
        load_settings(DEFAULT_PIPELINE, prof)
    assert "prof.yaml" in err.value.message


# -- home files -------------------------------------------------------------------------------------------------
def _load_home(text: str):
    from assistant.home.model import Home

    with tempfile.TemporaryDirectory() as d:
        try:
            return Home.load(_write(d, "home.yaml", text))
        except AssistantError as err:
            assert err.code.startswith("home-") and err.message
            return None


@FUZZ
@given(mutated(HOME))
def test_mutated_home_files_load_or_give_a_coded_error(doc):
    _count("home mutated")
    home = _load_home(yaml.safe_dump(doc, allow_unicode=True))
    if home is not None:
        home.states()  # a loaded home is usable


@FUZZ
@given(st.text(max_size=300))
def test_any_text_as_a_home_file(text):
    _count("home text")
    _load_home(text)
