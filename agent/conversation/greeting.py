"""The first turn: the agent speaks first, with a greeting the LLM writes from an instruction.

Use it as the instructions of the session's first reply (for example
``session.generate_reply(instructions=greeting_instruction(choice, data))``); the system prompt
from ``agent.prompts`` still applies. Pure.
"""

from __future__ import annotations

from agent.characters import ConstantInstructions, QuizShowInstructions
from agent.conversation.prompts import PromptData, level_name, number_words
from agent.room_config import RoomChoice

_OPENING = {
    "en": (
        "Start the conversation now: greet the user briefly as {name}, in English, in one or two "
        "short spoken sentences, staying in character. "
    ),
    "fr": (
        "Commence la conversation maintenant : salue brièvement l'utilisateur en tant que {name}, "
        "en français, en une ou deux phrases courtes, sans sortir de ton personnage. "
    ),
}

_BY_TYPE = {
    "en": {
        "smalltalk": "Then open the chat with the conversation starter from your instructions.",
        "quiz_show": (
            "Welcome them to the quiz, say there will be {count} questions, and ask whether they "
            "are ready. Do not ask the first question yet."
        ),
        "life_advice": "Then ask, warmly, what is on their mind today.",
        "news": (
            "Then offer to go through a few tech headlines, or to talk about whatever in tech "
            "interests them."
        ),
        "explanation": (
            "Then say you can explain how this voice agent works, and ask what they would like "
            "to know."
        ),
        "constant": "Then ask an opening question that fits your character.",
        "tutor": (
            "Say that you will work on {subject} together at {level} level, and ask what they "
            "already know or would like to practise."
        ),
    },
    "fr": {
        "smalltalk": "Puis lance la discussion avec l'amorce de conversation de tes instructions.",
        "quiz_show": (
            "Souhaite-lui la bienvenue dans le quiz, annonce {count} questions et demande s'il "
            "est prêt. Ne pose pas encore la première question."
        ),
        "life_advice": "Puis demande-lui chaleureusement ce qui le préoccupe aujourd'hui.",
        "news": (
            "Puis propose de passer en revue quelques titres de l'actualité tech, ou de parler de "
            "ce qui l'intéresse dans ce domaine."
        ),
        "explanation": (
            "Puis dis que tu peux expliquer comment fonctionne cet agent vocal, et demande ce "
            "qu'il aimerait savoir."
        ),
        "constant": "Puis pose une première question qui va bien avec ton personnage.",
        "tutor": (
            "Dis que vous allez travailler ensemble en {subject}, niveau {level}, et demande-lui "
            "ce qu'il sait déjà ou ce qu'il aimerait travailler."
        ),
    },
}


def greeting_instruction(choice: RoomChoice, data: PromptData | None = None) -> str:
    """The instruction for the agent's first, LLM-generated turn, in the room's language.

    ``data`` only gives the tutor's subject its display name; without it the id is used.
    """
    language = choice.language if choice.language in _OPENING else "en"
    character = choice.character
    instructions = character.instructions
    subject = choice.subject or ""
    if data is not None and subject:
        subject = data.subject_name(subject, language)
    count = instructions.questions if isinstance(instructions, QuizShowInstructions) else 0
    kind = "constant" if isinstance(instructions, ConstantInstructions) else instructions.type
    follow = _BY_TYPE[language][kind].format(
        count=number_words(count, language),
        subject=subject,
        level=level_name(choice.level or "", language),
    )
    return _OPENING[language].format(name=character.spoken_name) + follow
