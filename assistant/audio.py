"""Audio at the boundary: decode any file into 16 kHz mono int16 frames, streamed so memory stays bounded.

soundfile (libsndfile) decodes WAV/FLAC/OGG block by block; PyAV decodes the rest (MP3, M4A...);
soxr resamples in streaming mode. Everything downstream sees one format: `PIPELINE_RATE` mono int16.
"""

from __future__ import annotations

import contextlib
import io
import logging
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from assistant.errors import AudioInputError

_LOGGER = logging.getLogger(__name__)

PIPELINE_RATE: Final = 16000
"""Sample rate of every frame inside the pipeline (Hz)."""
FRAME_SAMPLES: Final = 1280
"""80 ms at 16 kHz: openWakeWord's native chunk, and the pipeline's frame."""
_READ_BLOCK_SECONDS: Final = 2.0


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    seconds: float | None
    """None when the container does not say (some MP3s)."""
    format: str


def probe(path: Path) -> AudioInfo:
    """Open the file far enough to know its format, or raise AudioInputError saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise AudioInputError("audio-not-found", f"{path}: no such file. Check the path.")
    if path.is_dir():
        raise AudioInputError("audio-not-a-file", f"{path} is a directory; give audio files (WAV, FLAC, MP3...).")
    if path.stat().st_size == 0:
        raise AudioInputError("audio-empty", f"{path} is empty (0 bytes). Record or copy the audio again.")
    import soundfile as sf

    with contextlib.suppress(Exception):  # not for libsndfile: fall back to FFmpeg's decoders below
        info = sf.info(str(path))
        return AudioInfo(str(path), int(info.samplerate), int(info.channels), float(info.duration), info.format)
    try:
        import av

        with av.open(str(path)) as container:
            streams = container.streams.audio
            if not streams:
                raise AudioInputError("audio-no-stream", f"{path} holds no audio stream.")
            st = streams[0]
            seconds = float(st.duration * st.time_base) if st.duration and st.time_base else None
            return AudioInfo(str(path), int(st.rate), int(st.channels), seconds, container.format.name)
    except AudioInputError:
        raise
    except Exception as err:
        raise AudioInputError(
            "audio-undecodable",
            f"{path} is not audio that can be decoded ({type(err).__name__}). "
            "Give a WAV, FLAC, OGG or MP3 file; convert others with `sox in.x out.wav` or ffmpeg.",
        ) from err


def check_decodable(path: Path) -> AudioInfo:
    """Probe the file and decode its first frame: raises AudioInputError (a coded, clear error) for a missing,
    empty, unreadable or undecodable file, so a caller can refuse it before any turn starts."""
    info = probe(path)
    frames = stream_file(path)
    try:
        next(frames)
    except StopIteration:  # stream_file raises audio-empty itself; this is belt and braces
        raise AudioInputError("audio-empty", f"{path} contains no audio samples.") from None
    finally:
        frames.close()
    return info


def _blocks_soundfile(path: Path, block: int) -> Iterator[tuple[np.ndarray, int]]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        for data in f.blocks(blocksize=block, dtype="float32", always_2d=True):
            yield data.mean(axis=1), rate


def _blocks_av(path: Path) -> Iterator[tuple[np.ndarray, int]]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:  # skip a corrupt packet, keep the rest (as faster-whisper does)
                continue
            for frame in frames:
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1).astype(np.float32), stream.rate


def stream_file(path: Path, frame_samples: int = FRAME_SAMPLES) -> Iterator[np.ndarray]:
    """Yield int16 mono frames at PIPELINE_RATE from any audio file, never holding the whole file.

    Stereo is mixed down; any rate is resampled. The last frame is zero-padded.
    Raises AudioInputError for missing, empty or undecodable input, before yielding anything.
    """
    info = probe(path)
    if info.sample_rate < 8000:
        raise AudioInputError(
            "audio-rate-too-low",
            f"{path} is {info.sample_rate} Hz; speech needs at least 8 kHz. Re-record at 16 kHz.",
        )
    block = int(info.sample_rate * _READ_BLOCK_SECONDS)
    try:
        import soundfile as sf

        sf.info(str(path))
        source = _blocks_soundfile(path, block)
    except Exception:  # noqa: BLE001
        source = _blocks_av(path)
    yield from _frames(source, frame_samples, path)


def _frames(source: Iterator[tuple[np.ndarray, int]], frame_samples: int, path: Path) -> Iterator[np.ndarray]:
    import soxr

    resampler = None
    pending = np.zeros(0, dtype=np.float32)
    total = 0
    try:
        for data, rate in source:
            if rate != PIPELINE_RATE:
                if resampler is None:
                    resampler = soxr.ResampleStream(rate, PIPELINE_RATE, 1, dtype="float32")
                data = resampler.resample_chunk(data)
            pending = np.concatenate([pending, data])
            while len(pending) >= frame_samples:
                yield to_int16(pending[:frame_samples])
                total += frame_samples
                pending = pending[frame_samples:]
        if resampler is not None:
            pending = np.concatenate([pending, resampler.resample_chunk(np.zeros(0, np.float32), last=True)])
    except AudioInputError:
        raise
    except Exception as err:  # libsndfile raises on a truncated/corrupt body
        if total == 0:
            raise AudioInputError(
                "audio-corrupt", f"{path} could not be decoded ({err}). The file is damaged; re-export it."
            ) from err
        _LOGGER.warning("%s: decoding stopped after %.1f s: %s", path, total / PIPELINE_RATE, err)
    while len(pending) > frame_samples:
        yield to_int16(pending[:frame_samples])
        total += frame_samples
        pending = pending[frame_samples:]
    if len(pending):
        frame = np.zeros(frame_samples, dtype=np.float32)
        frame[: len(pending)] = pending
        yield to_int16(frame)
        total += len(pending)
    if total == 0:
        raise AudioInputError("audio-empty", f"{path} contains no audio samples. Record or copy the audio again.")


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16, clipping instead of wrapping."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def read_file(path: Path) -> np.ndarray:
    """Whole file as int16 at PIPELINE_RATE (for short clips in tests and tools)."""
    return np.concatenate(list(stream_file(path)))


def write_flac(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write int16 mono samples as FLAC (lossless, about half the size of WAV for speech)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, dtype=np.int16), sample_rate, format="FLAC", subtype="PCM_16")


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write int16 mono samples as a WAV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(samples, dtype=np.int16).tobytes())


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(samples, dtype=np.int16).tobytes())
    return buf.getvalue()
