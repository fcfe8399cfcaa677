"""Names the Kyutai servers understand: languages, voices, wire formats."""

from __future__ import annotations

from typing import Literal

# The TTS and STT 1B models speak and understand English and French.
Language = Literal["en", "fr"]

# A few voices of the kyutai/tts-voices repository (any path in that layout works).
TTSVoices = Literal[
    "expresso/ex03-ex01_happy_001_channel1_334s.wav",
    "expresso/ex04-ex02_confused_001_channel2_111s.wav",
    "unmute-prod-website/developer-1.mp3",
    "vctk/p225_023.wav",
    "cml-tts/fr/2114_1656_000001-0001.wav",
    "cml-tts/fr/1406_1028_000009-0003.wav",
]

# `format=` values of /api/tts_streaming; the plugin decodes PcmMessagePack.
TTSFormats = Literal["Pcm", "PcmMessagePack", "OggOpus", "OggOpusMessagePack"]

# Pause-prediction heads of the STT: index i predicts a pause of 0.5, 1, 2 or 3 s.
PauseHead = Literal[0, 1, 2, 3]

DEFAULT_VOICE: TTSVoices = "expresso/ex03-ex01_happy_001_channel1_334s.wav"
DEFAULT_STT_URL = "ws://127.0.0.1:8089"
DEFAULT_TTS_URL = "ws://127.0.0.1:8089"
DEFAULT_API_KEY = "public_token"
STT_ROUTE = "/api/asr-streaming"
TTS_ROUTE = "/api/tts_streaming"

SAMPLE_RATE = 24000
NUM_CHANNELS = 1
FRAME_SIZE = 1920  # 80 ms at 24 kHz: one model step
FRAME_DURATION = FRAME_SIZE / SAMPLE_RATE
