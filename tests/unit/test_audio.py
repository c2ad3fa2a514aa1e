"""Audio at the boundary: any rate/channels in, 16 kHz mono frames out, and clear errors for bad files."""

from __future__ import annotations

import tracemalloc
import wave

import numpy as np
import pytest
import soundfile as sf

from assistant import audio
from assistant.errors import AudioInputError


def test_stereo_44k_flac_becomes_16k_mono_frames(speech_dir):
    frames = list(audio.stream_file(speech_dir / "whisper" / "jfk.flac"))
    assert all(f.dtype == np.int16 and len(f) == audio.FRAME_SAMPLES for f in frames)
    seconds = len(frames) * audio.FRAME_SAMPLES / audio.PIPELINE_RATE
    assert 11.0 <= seconds <= 11.1  # 11.0 s of audio, last frame padded


def test_mp3_is_decoded(speech_dir):
    samples = audio.read_file(speech_dir / "faster_whisper" / "hotwords.mp3")
    assert abs(len(samples) / audio.PIPELINE_RATE - 4.0) < 0.1
    assert np.abs(samples).max() > 1000  # real signal, not silence


@pytest.mark.parametrize(
    "content, code",
    [(b"", "audio-empty"), (b"this is a text file, not audio\n" * 20, "audio-undecodable")],
)
def test_bad_files_raise_coded_errors(tmp_path, content, code):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioInputError) as err:
        list(audio.stream_file(path))
    assert err.value.code == code
    assert str(path) in err.value.message


def test_missing_file(tmp_path):
    with pytest.raises(AudioInputError) as err:
        audio.probe(tmp_path / "nope.wav")
    assert err.value.code == "audio-not-found"


def test_truncated_wav_keeps_what_decodes(tmp_path, speech_dir):
    whole = (speech_dir / "voice2json" / "turn_on_living_room_lamp.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: len(whole) // 2])  # header says more data than there is
    samples = audio.read_file(cut)
    assert 0.9 < len(samples) / audio.PIPELINE_RATE < 1.4


def test_header_only_wav_is_empty(tmp_path):
    path = tmp_path / "header.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    with pytest.raises(AudioInputError) as err:
        list(audio.stream_file(path))
    assert err.value.code == "audio-empty"


def test_8khz_stereo_is_resampled_and_mixed(tmp_path):
    t = np.arange(8000 * 2) / 8000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "8k_stereo.wav"
    sf.write(path, np.stack([left, left], axis=1), 8000, subtype="PCM_16")
    samples = audio.read_file(path)
    assert abs(len(samples) - 32000) <= audio.FRAME_SAMPLES
    spectrum = np.abs(np.fft.rfft(samples[:16000].astype(float)))
    assert abs(np.argmax(spectrum) - 440) <= 2  # the tone survives resampling at the right pitch


def test_hour_long_file_streams_in_bounded_memory(tmp_path):
    """An hour of 8 kHz stereo (115 MB) is decoded with a few MB of memory, not the whole file."""
    path = tmp_path / "hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", 8000, 2, subtype="PCM_16") as f:
        block = (rng.normal(0, 0.05, size=(8000 * 60, 2))).astype(np.float32)
        for _ in range(60):
            f.write(block)
    tracemalloc.start()
    n = 0
    for frame in audio.stream_file(path):
        n += len(frame)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert abs(n / audio.PIPELINE_RATE - 3600) < 1
    assert peak < 20e6, f"peak {peak / 1e6:.1f} MB"
