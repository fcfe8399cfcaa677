"""Spoken fixtures (tests, benches), generated with espeak-ng on first use and cached per text."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 24000
CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "speech-fixtures"


def _resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    if src_rate == dst_rate:
        return samples
    duration = len(samples) / src_rate
    n_out = round(duration * dst_rate)
    t_in = np.arange(len(samples)) / src_rate
    t_out = np.arange(n_out) / dst_rate
    return np.interp(t_out, t_in, samples).astype(np.float32)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM")
        raw = wav.readframes(wav.getnframes())
        data = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
        if wav.getnchannels() > 1:
            data = data.reshape(-1, wav.getnchannels()).mean(axis=1)
        return data, wav.getframerate()


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())


def speech_wav(
    text: str,
    *,
    language: str = "en",
    lead_silence_s: float = 0.5,
    trail_silence_s: float = 0.5,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """A mono 16-bit WAV of `text` spoken by espeak-ng, padded with silence."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    key = hashlib.sha256(
        f"{text}|{language}|{lead_silence_s}|{trail_silence_s}|{sample_rate}".encode()
    ).hexdigest()[:16]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = CACHE_DIR / f"{key}.wav"
    if out.exists():
        return out
    raw = CACHE_DIR / f"{key}.raw.wav"
    subprocess.run(
        ["espeak-ng", "-v", language, "-s", "160", "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    samples, rate = read_wav(raw)
    raw.unlink()
    samples = _resample(samples, rate, sample_rate)
    pad = [
        np.zeros(round(s * sample_rate), dtype=np.float32)
        for s in (lead_silence_s, trail_silence_s)
    ]
    tmp = out.with_suffix(".tmp")
    write_wav(tmp, np.concatenate([pad[0], samples, pad[1]]), sample_rate)
    tmp.replace(out)  # atomic: concurrent tests never read a half-written file
    return out


def speech_samples(
    text: str,
    *,
    language: str = "en",
    lead_silence_s: float = 0.5,
    trail_silence_s: float = 0.5,
) -> np.ndarray:
    """`speech_wav`'s audio as float32 mono samples at SAMPLE_RATE."""
    samples, _rate = read_wav(
        speech_wav(
            text, language=language, lead_silence_s=lead_silence_s, trail_silence_s=trail_silence_s
        )
    )
    return samples
