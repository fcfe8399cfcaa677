"""Kyutai plugin for LiveKit Agents.

Streaming speech-to-text with semantic end of turn (``kyutai.STT``) and streaming-in-text
speech synthesis with word timings (``kyutai.TTS``), against Kyutai's moshi-server protocol;
Moshi, which listens and speaks at once, as a duplex model (``kyutai.Moshi``).
"""

from .connection import AtCapacityError
from .models import Language, TTSVoices
from .moshi import Moshi, MoshiSession
from .moshi_gate import MoshiGate
from .stt import STT, SpeechStream
from .tts import TTS, ChunkedStream, SynthesizeStream
from .turn import TurnOptions
from .version import __version__

__all__ = [
    "STT",
    "TTS",
    "AtCapacityError",
    "ChunkedStream",
    "Language",
    "Moshi",
    "MoshiGate",
    "MoshiSession",
    "SpeechStream",
    "SynthesizeStream",
    "TTSVoices",
    "TurnOptions",
    "__version__",
]

from livekit.agents import Plugin

from .log import logger


class KyutaiPlugin(Plugin):
    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


Plugin.register_plugin(KyutaiPlugin())
