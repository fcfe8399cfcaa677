"""Sample catalogue shared by the token service's unit tests (unique module name on purpose)."""

from typing import Any

TUTOR_FR_VOICE = "cml-tts/fr/2154_2576_000020.wav.1e68beda@240.safetensors"


def sample_catalog_data() -> dict[str, Any]:
    return {
        "default": "watercooler",
        "characters": [
            {
                "id": "watercooler",
                "name": "Watercooler",
                "description": "Small talk.",
                "language": "en",
                "voice": "unmute-prod-website/p329_022.wav.1e68beda@240.safetensors",
                "instructions": {"type": "smalltalk", "prompt": "extra keys are the agent's"},
            },
            {
                "id": "charles",
                "name": "Charles",
                "language": "fr",
                "voice": "unmute-prod-website/degaulle-2.wav.1e68beda@240.safetensors",
            },
            {
                "id": "tutor",
                "name": "Tutor",
                "language": "en",
                "languages": ["en", "fr"],
                "voice": "vctk/p226_023.wav.1e68beda@240.safetensors",
                "voice_by_language": {"fr": TUTOR_FR_VOICE},
                "takes_subject": True,
                "subjects": ["maths", "history"],
                "levels": ["beginner", "advanced"],
                "future_field": "ignored",
            },
        ],
    }
