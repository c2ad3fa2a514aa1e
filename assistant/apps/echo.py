"""Is what the microphone hears the assistant's own voice? Normalised cross-correlation against the playback."""

from __future__ import annotations

import numpy as np


def echo_explained(mic: np.ndarray, reference: np.ndarray) -> float:
    """Largest fraction of `mic`'s energy that a scaled, time-shifted piece of `reference` explains (0..1).

    That is the normalised cross-correlation squared at the best lag: with the optimal gain g = <m,r>/<r,r>
    the residual m - g r has energy |m|^2 (1 - ncc^2).
    """
    m = np.asarray(mic, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    # zeros on both sides: the window may start before playback began or end after it stopped (the echo tail)
    r = np.concatenate([np.zeros(len(m)), r, np.zeros(len(m))])
    em = float(np.dot(m, m))
    if em <= 1e-3 * len(m) or not np.any(r):
        return 0.0
    n = 1 << int(np.ceil(np.log2(len(m) + len(r))))
    xc = np.fft.irfft(np.fft.rfft(r, n) * np.conj(np.fft.rfft(m, n)), n)[: len(r) - len(m) + 1]
    c = np.concatenate([[0.0], np.cumsum(r * r)])
    er = c[len(m) :] - c[: len(r) - len(m) + 1]
    ok = er > 1e-6 * len(m)
    if not np.any(ok):
        return 0.0
    ncc2 = np.zeros_like(xc)
    ncc2[ok] = xc[ok] ** 2 / (er[ok] * em)
    return float(min(1.0, ncc2.max()))
