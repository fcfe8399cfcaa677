"""A small characters catalogue for the token service's unit and integration tests.

Valid under the one schema (``catalog.characters``): the agent would accept it too.
"""

from typing import Any

EN_VOICE = "unmute-prod-website/p329_022.wav.1e68beda@240.safetensors"
FR_VOICE = "unmute-prod-website/degaulle-2.wav.1e68beda@240.safetensors"
TUTOR_VOICE = "vctk/p226_023.wav.1e68beda@240.safetensors"
TUTOR_FR_VOICE = "cml-tts/fr/2154_2576_000020.wav.1e68beda@240.safetensors"
# The agent's instructions are never shown by the token service: tests look for this text.
SECRET_PROMPT = "SECRET PROMPT TEXT"


def sample_catalog_data() -> dict[str, Any]:
    """A fresh copy each call: tests mutate it."""
    return {
        "default": "watercooler",
        "characters": [
            {
                "id": "watercooler",
                "name": "Watercooler",
                "description": "Small talk.",
                "language": "en",
                "voice": EN_VOICE,
                "instructions": {"type": "smalltalk", "persona": SECRET_PROMPT},
            },
            {
                "id": "charles",
                "name": "Charles",
                "language": "fr",
                "voice": FR_VOICE,
                "instructions": {"type": "constant", "text": "Tu es Charles."},
            },
            {
                "id": "tutor",
                "name": "Tutor",
                "description": "A tutor.",
                "language": "en",
                "languages": ["en", "fr"],
                "voice": TUTOR_VOICE,
                "voice_by_language": {"fr": TUTOR_FR_VOICE},
                "takes_subject": True,
                "subjects": ["maths", "history"],
                "levels": ["beginner", "advanced"],
                "instructions": {"type": "tutor"},
                "future_field": "ignored",
            },
        ],
    }
