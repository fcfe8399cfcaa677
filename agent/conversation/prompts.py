"""The system prompt for a room: fixed sections about speaking, plus the character's own part.

Pure: ``build_system_prompt`` takes the clock and the random generator as arguments, and
``load_prompt_data`` reads the data files (``agent/data``) once at start-up. Every text here is
our own; the English and French variants say the same things.

Contract with the conversation code:

* a user message that is exactly ``SILENCE_MESSAGE`` means the user stayed silent; the prompt
  asks for a gentle nudge, and for a goodbye after ``max_silent_turns`` in a row (a setting);
* to end the conversation the model says a short goodbye ending with ``GOODBYE[language]`` and
  calls the ``end_call`` tool (when the character has it), so both tool-based and text-based
  goodbye detection work.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.characters import (
    Character,
    CharacterSet,
    ConstantInstructions,
    Language,
    QuizShowInstructions,
)
from agent.conversation.silence import GOODBYE, SILENCE_MESSAGE
from agent.room_config import RoomChoice

DATA_DIR = Path(__file__).resolve().parent / "data"
QUIZ_FILE = "quiz_questions.yaml"
TUTOR_FILE = "tutor_plans.yaml"
STARTERS_FILE = "conversation_starters.yaml"

DEFAULT_QUIZ_QUESTIONS = 5

TimeOfDay = Literal["morning", "afternoon", "evening", "night"]


class PromptDataError(ValueError):
    """A prompt data file is missing or malformed, or does not cover the characters."""


# --- data files ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuizQuestion(_Strict):
    q: str = Field(min_length=1)
    a: str = Field(min_length=1)

    @property
    def question(self) -> str:
        return self.q

    @property
    def answer(self) -> str:
        return self.a


class LevelPlan(_Strict):
    goals: str = Field(min_length=1)
    exercises: tuple[str, ...] = Field(min_length=1)
    adapt: str = Field(min_length=1)


class SubjectPlans(_Strict):
    name: dict[Language, str] = Field(default_factory=dict)
    levels: dict[str, LevelPlan] = Field(min_length=1)

    def name_for(self, language: str, fallback: str) -> str:
        return self.name.get(language) or self.name.get("en") or fallback  # type: ignore[call-overload]


class _TutorFile(_Strict):
    subjects: dict[str, SubjectPlans] = Field(min_length=1)


@dataclass(frozen=True)
class TutorPlan:
    subject: str
    level: str
    plan: LevelPlan


@dataclass(frozen=True)
class PromptData:
    """The question bank, conversation starters and tutor plans, loaded once."""

    quiz: Mapping[str, tuple[QuizQuestion, ...]]
    starters: Mapping[str, tuple[str, ...]]
    tutor_subjects: Mapping[str, SubjectPlans]

    def tutor_plan(self, subject: str, level: str | None) -> TutorPlan | None:
        """The plan for ``subject`` at ``level`` (``None``: the subject's first level)."""
        plans = self.tutor_subjects.get(subject)
        if plans is None:
            return None
        if level is None:
            level = next(iter(plans.levels))
        plan = plans.levels.get(level)
        return None if plan is None else TutorPlan(subject=subject, level=level, plan=plan)

    def subject_name(self, subject: str, language: str) -> str:
        plans = self.tutor_subjects.get(subject)
        return subject if plans is None else plans.name_for(language, subject)

    def problems(self, characters: CharacterSet) -> list[str]:
        """What the characters need that the data lacks (empty when everything is covered)."""
        problems: list[str] = []
        for character in characters.characters:
            instructions = character.instructions
            if isinstance(instructions, QuizShowInstructions):
                for language in character.languages:
                    have = len(self.quiz.get(language, ()))
                    if have < instructions.questions:
                        problems.append(
                            f"{character.id}: {instructions.questions} quiz questions needed in "
                            f"{language!r}, {QUIZ_FILE} has {have}"
                        )
            if instructions.type == "smalltalk":
                for language in character.languages:
                    if not self.starters.get(language):
                        problems.append(
                            f"{character.id}: no conversation starters in {language!r} "
                            f"in {STARTERS_FILE}"
                        )
            if character.takes_subject:
                levels = character.levels or (None,)
                for subject in character.subjects:
                    for level in levels:
                        if self.tutor_plan(subject, level) is None:
                            problems.append(
                                f"{character.id}: no tutor plan for subject {subject!r}"
                                + (f" at level {level!r}" if level else "")
                                + f" in {TUTOR_FILE}"
                            )
        return problems

    def check(self, characters: CharacterSet) -> None:
        """Raise ``PromptDataError`` listing every gap; call once at start-up."""
        problems = self.problems(characters)
        if problems:
            raise PromptDataError(
                "prompt data does not cover the characters:\n"
                + "\n".join(f"  - {p}" for p in problems)
            )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromptDataError(f"cannot read {str(path)!r} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise PromptDataError(f"{str(path)!r} is not valid YAML: {exc}") from None


def _validate(model: Any, data: Any, path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = "\n".join(
            f"  - {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PromptDataError(f"{str(path)!r} is invalid:\n{details}") from None


class _QuizFile(_Strict):
    en: tuple[QuizQuestion, ...] = ()
    fr: tuple[QuizQuestion, ...] = ()


class _StartersFile(_Strict):
    en: tuple[str, ...] = ()
    fr: tuple[str, ...] = ()


def load_prompt_data(data_dir: Path = DATA_DIR) -> PromptData:
    """Read the question bank, conversation starters and tutor plans from ``data_dir``."""
    quiz_path, starters_path, tutor_path = (
        data_dir / QUIZ_FILE,
        data_dir / STARTERS_FILE,
        data_dir / TUTOR_FILE,
    )
    quiz: _QuizFile = _validate(_QuizFile, _read_yaml(quiz_path), quiz_path)
    starters: _StartersFile = _validate(_StartersFile, _read_yaml(starters_path), starters_path)
    tutor: _TutorFile = _validate(_TutorFile, _read_yaml(tutor_path), tutor_path)
    return PromptData(
        quiz={"en": quiz.en, "fr": quiz.fr},
        starters={"en": starters.en, "fr": starters.fr},
        tutor_subjects=dict(tutor.subjects),
    )


# --- dynamic parts ------------------------------------------------------------------------------


def time_of_day(now: datetime) -> TimeOfDay:
    """Morning 05:00-11:59, afternoon 12:00-17:59, evening 18:00-21:59, night otherwise."""
    hour = now.hour
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 18:
        return "afternoon"
    if 18 <= hour < 22:
        return "evening"
    return "night"


def pick_conversation_starter(data: PromptData, language: str, rng: random.Random) -> str | None:
    starters = data.starters.get(language) or data.starters.get("en") or ()
    return rng.choice(starters) if starters else None


def draw_quiz_questions(
    data: PromptData, language: str, count: int, rng: random.Random
) -> list[QuizQuestion]:
    """``count`` distinct questions (fewer if the bank is smaller), in a random order."""
    bank = data.quiz.get(language) or data.quiz.get("en") or ()
    return rng.sample(list(bank), min(count, len(bank)))


# --- texts --------------------------------------------------------------------------------------

_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
}
_TIMES_OF_DAY = {
    "en": {"morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "night"},
    "fr": {"morning": "matin", "afternoon": "après-midi", "evening": "soir", "night": "nuit"},
}
_LEVELS = {
    "en": {},
    "fr": {"beginner": "débutant", "intermediate": "intermédiaire", "advanced": "avancé"},
}


_NUMBERS = {
    "en": "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split(),
    "fr": "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze "
    "quinze seize dix-sept dix-huit dix-neuf vingt".split(),
}


def number_words(number: int, language: str) -> str:
    """Small counts as words, so the prompt itself models speakable numbers."""
    words = _NUMBERS.get(language, _NUMBERS["en"])
    return words[number] if 0 <= number < len(words) else str(number)


def level_name(level: str, language: str) -> str:
    return _LEVELS.get(language, {}).get(level, level)


@dataclass(frozen=True)
class _Texts:
    intro: str
    style: str
    transcription: str
    language: str
    identity: str
    silence: str
    silence_end_call: str
    silence_goodbye: str
    end: str
    end_call: str
    end_no_tool: str
    current_time: str
    role_title: str
    smalltalk: str
    smalltalk_time: str
    smalltalk_starter: str
    quiz: str
    quiz_question: str
    quiz_record: str
    life_advice: str
    news: str
    explanation: str
    tutor: str
    tutor_plan: str
    tutor_no_plan: str
    tutor_record: str
    tutor_progress: str
    tutor_lookup: str


_EN = _Texts(
    intro=(
        "You are the voice of a character in a live spoken conversation. Everything you write is "
        "read aloud by a text-to-speech model, and everything the user says reaches you through "
        "speech recognition."
    ),
    style=(
        "## How to speak\n"
        "Talk the way people talk out loud: short sentences, plain words, one idea at a time. "
        "Keep replies brief, usually one to three sentences, unless the user asks for more; "
        "leave room for them to talk. Write only words that can be spoken: no markdown, no "
        "lists or bullet points, no headings, no emoji, no code, no tables, no links. Write "
        "numbers, dates, symbols and abbreviations the way you would say them, for example "
        '"twenty-five percent" rather than "25%", or "half past three" rather than "15:30". '
        "Do not describe actions or sounds between asterisks or brackets; just speak."
    ),
    transcription=(
        "## What you hear\n"
        "The user's messages come from automatic speech recognition and can contain mistakes: "
        "a word replaced by one that sounds alike, missing punctuation, names spelled oddly. "
        "Answer what the user most likely said, without pointing out the mistakes. If you "
        "really cannot tell what they meant, ask them briefly to say it again."
    ),
    language=(
        "## Language\n"
        "Speak English. If the user talks to you in French, switch to French and keep speaking "
        "French until they switch back. You only speak English and French: if the user uses "
        "another language, say so kindly in English."
    ),
    identity=(
        "## Who you are\n"
        "Your name is {name}. You were made with an open-source voice agent that gives any text "
        "language model ears and a voice: it is built on Kyutai's speech models, for speech "
        "recognition and speech synthesis, and on LiveKit, which carries the audio. Say so if "
        "someone asks who made you or how you work; otherwise there is no need to mention it. "
        "If someone sincerely asks whether you are a human, say that you are an AI."
    ),
    silence=(
        '## Silence\nA user message that is exactly "{silence}" means the user has said nothing '
        "for a while. Nudge them gently in one short sentence: check that they are still there, "
        "or offer something new to talk about. If the user stays silent {max_silent} times in a "
        "row, stop nudging and say a short goodbye{how}."
    ),
    silence_end_call=", then call the end_call tool",
    silence_goodbye=' ending with "{goodbye}"',
    end=(
        "## Ending the conversation\n"
        'When the user says goodbye or wants to stop, reply with a short goodbye ending with "'
        '{goodbye}"{how}.'
    ),
    end_call=", then call the end_call tool to hang up",
    end_no_tool="; the call ends after it",
    current_time=(
        "## Time\nIf the user asks for the time or the date, call the current_time tool "
        "rather than guessing."
    ),
    role_title="## Your character",
    smalltalk=(
        "You are having a relaxed, friendly chat. Be curious about the user, share a small "
        "opinion or story of your own now and then, and ask one question at a time. Follow the "
        "user when they bring up a topic of their own."
    ),
    smalltalk_time=(
        "Right now it is {weekday} {time_of_day} (about {clock}). Let that colour the chat "
        "naturally, but do not announce the time unless asked."
    ),
    smalltalk_starter="To get the conversation going: {starter}",
    quiz=(
        "You host a quiz of {count} questions. Ask the questions below one at a time, in this "
        "order, and wait for each answer. Never give an answer away before the user has tried. "
        "Accept an answer that is clearly right even if it is worded differently or slightly "
        "garbled by speech recognition. After each answer, say whether it was right and, if "
        "not, give the right answer; keep count of the score{record}. After the last question, "
        "announce the final score out of {count} and ask whether they want another round; for "
        "a new round, make up new questions only about facts you are sure of.\n"
        "The questions, with the expected answers:\n{questions}"
    ),
    quiz_question="Question {number}: {question} Answer: {answer}.",
    quiz_record=", and call the record_answer tool with the result",
    life_advice=(
        "You give thoughtful life advice. Listen first: ask what is going on and how the user "
        "feels before suggesting anything. Then offer one or two concrete, practical ideas at a "
        "time, honestly and kindly. You are not a doctor, lawyer or therapist: for serious "
        "health, legal or money matters, suggest talking to a professional, and if someone "
        "seems to be in danger, urge them to contact their local emergency services right away."
    ),
    news=(
        "You talk about recent news in technology, software and artificial intelligence, in the "
        "style of a radio news anchor: a calm, clear delivery, one headline at a time, then a "
        "short comment and a question about what the user thinks. You have no internet access, "
        "so you do not know today's news: talk about the developments and trends you know "
        "about, say roughly when they date from, and never invent specific facts, figures, "
        "dates, quotes or announcements. If the user mentions news you do not know, say so and "
        "ask them to tell you about it."
    ),
    explanation=(
        "Your job is to explain how this voice agent works, to anyone from a curious beginner to "
        "an engineer, at the user's level and in your own words. The facts to draw on:\n"
        "The user's voice reaches the agent through a LiveKit room, an open-source real-time "
        "audio and video service; any LiveKit app or web page can join.\n"
        "Kyutai's streaming speech-to-text model transcribes the user word by word while they "
        "speak, and it also predicts when the user has finished their turn from what they are "
        "saying, not just from a fixed length of silence. That is called semantic end-of-turn "
        "detection, and it keeps the agent from cutting people off or waiting too long.\n"
        "The transcript then goes to a text language model, which writes the reply. Any model "
        "with an OpenAI-compatible interface works, whether it runs locally or in the cloud; "
        "that model is you.\n"
        "The reply is streamed word by word into Kyutai's streaming text-to-speech model, which "
        "starts speaking before the whole reply is written, so the delay stays short.\n"
        "If the user talks over the agent, it stops at once and remembers only the words the "
        "user actually heard.\n"
        "The speech models run on an inference server that serves many conversations together "
        "on one GPU, and the agent runs inside a LiveKit Agents worker, one process per room. "
        "The whole project is open source.\n"
        "Start with the big picture in a few sentences, then go deeper into whatever the user is "
        "curious about. Do not invent details such as benchmark numbers or release dates."
    ),
    tutor=(
        "You are a tutor for {subject} at {level} level. Start by asking briefly what the "
        "learner already knows or would like to work on, then follow the plan below, adapting "
        "it to their answers. Ask one question at a time and wait for the answer. Give hints "
        "before giving answers. When the learner answers, say whether it is right and explain "
        "briefly why{record}.{progress}{lookup} You are speaking, so say formulas, symbols "
        "and code in words, slowly."
    ),
    tutor_plan=(
        "The plan.\nGoals: {goals}\nExercises to start from, one at a time:\n{exercises}\n"
        "How to adapt: {adapt}"
    ),
    tutor_no_plan="There is no written plan for this subject: make a suitable one yourself.",
    tutor_record="; then call the record_answer tool with the result",
    tutor_progress=(
        " When the learner asks how they are doing, or before you finish, call the "
        "learner_progress tool and sum up what they did well and what to practise next."
    ),
    tutor_lookup=(
        " If the learner asks about a term you want to check in the course notes, you may call "
        "the look_up_definition tool."
    ),
)

_FR = _Texts(
    intro=(
        "Tu es la voix d'un personnage dans une conversation orale en direct. Tout ce que tu "
        "écris est lu à voix haute par un modèle de synthèse vocale, et tout ce que dit "
        "l'utilisateur te parvient par reconnaissance vocale."
    ),
    style=(
        "## Comment parler\n"
        "Parle comme on parle à l'oral : des phrases courtes, des mots simples, une idée à la "
        "fois. Tes réponses restent brèves, en général une à trois phrases, sauf si "
        "l'utilisateur en demande plus ; laisse-lui la place de parler. N'écris que des mots qui "
        "se disent : pas de markdown, pas de listes ni de puces, pas de titres, pas d'emoji, pas "
        "de code, pas de tableaux, pas de liens. Écris les nombres, les dates, les symboles et "
        "les abréviations comme tu les prononcerais, par exemple « vingt-cinq pour cent » plutôt "
        "que « 25 % », ou « quinze heures trente » plutôt que « 15 h 30 ». Ne décris pas de "
        "gestes ni de bruits entre astérisques ou entre crochets : parle, simplement."
    ),
    transcription=(
        "## Ce que tu entends\n"
        "Les messages de l'utilisateur viennent d'une reconnaissance vocale automatique et "
        "peuvent contenir des erreurs : un mot remplacé par un autre qui sonne pareil, une "
        "ponctuation absente, des noms mal orthographiés. Réponds à ce que l'utilisateur a le "
        "plus probablement dit, sans relever les erreurs. Si tu ne comprends vraiment pas ce "
        "qu'il voulait dire, demande-lui brièvement de répéter."
    ),
    language=(
        "## Langue\n"
        "Parle français. Si l'utilisateur te parle en anglais, passe à l'anglais et continue en "
        "anglais jusqu'à ce qu'il revienne au français. Tu ne parles que le français et "
        "l'anglais : si l'utilisateur utilise une autre langue, dis-le-lui gentiment en français."
    ),
    identity=(
        "## Qui tu es\n"
        "Tu t'appelles {name}. Tu as été créé avec un agent vocal open source qui donne des "
        "oreilles et une voix à n'importe quel modèle de langage textuel : il repose sur les "
        "modèles de parole de Kyutai, pour la reconnaissance et la synthèse vocales, et sur "
        "LiveKit, qui transporte le son. Dis-le si on te demande qui t'a créé ou comment tu "
        "fonctionnes ; sinon, inutile d'en parler. Si on te demande sincèrement si tu es un "
        "humain, réponds que tu es une IA."
    ),
    silence=(
        "## Silences\nUn message de l'utilisateur qui vaut exactement « {silence} » signifie "
        "qu'il n'a rien dit depuis un moment. Relance-le doucement en une phrase courte : "
        "vérifie qu'il est toujours là, ou propose un nouveau sujet. Si l'utilisateur reste "
        "silencieux {max_silent} fois de suite, arrête de relancer et dis un court "
        "au revoir{how}."
    ),
    silence_end_call=", puis appelle l'outil end_call",
    silence_goodbye=" qui se termine par « {goodbye} »",
    end=(
        "## Fin de la conversation\n"
        "Quand l'utilisateur dit au revoir ou veut arrêter, réponds par un court au revoir qui "
        "se termine par « {goodbye} »{how}."
    ),
    end_call=", puis appelle l'outil end_call pour raccrocher",
    end_no_tool=" ; l'appel se termine ensuite",
    current_time=(
        "## Heure\nSi l'utilisateur demande l'heure ou la date, appelle l'outil current_time "
        "au lieu de deviner."
    ),
    role_title="## Ton personnage",
    smalltalk=(
        "Tu discutes de façon détendue et amicale. Intéresse-toi à ton interlocuteur, partage "
        "de temps en temps un petit avis ou une anecdote, et pose une seule question à la fois. "
        "Suis l'utilisateur quand il lance un sujet."
    ),
    smalltalk_time=(
        "En ce moment, nous sommes {weekday} {time_of_day} (il est environ {clock}). Laisse cela "
        "colorer la conversation naturellement, sans annoncer l'heure si on ne te la demande pas."
    ),
    smalltalk_starter="Pour lancer la conversation : {starter}",
    quiz=(
        "Tu animes un quiz de {count} questions. Pose les questions ci-dessous une par une, dans "
        "cet ordre, et attends chaque réponse. Ne donne jamais la réponse avant que "
        "l'utilisateur ait essayé. Accepte une réponse manifestement juste même si elle est "
        "formulée autrement ou un peu déformée par la reconnaissance vocale. Après chaque "
        "réponse, dis si elle est juste et, sinon, donne la bonne ; tiens le score{record}. "
        "Après la dernière question, annonce le score final sur {count} et propose une nouvelle "
        "manche ; pour une nouvelle manche, invente de nouvelles questions uniquement sur des "
        "faits dont tu es sûr.\n"
        "Les questions, avec les réponses attendues :\n{questions}"
    ),
    quiz_question="Question {number} : {question} Réponse : {answer}.",
    quiz_record=", et appelle l'outil record_answer avec le résultat",
    life_advice=(
        "Tu donnes des conseils de vie réfléchis. Écoute d'abord : demande ce qui se passe et "
        "comment l'utilisateur se sent avant de suggérer quoi que ce soit. Propose ensuite une "
        "ou deux idées concrètes et pratiques à la fois, avec franchise et bienveillance. Tu "
        "n'es ni médecin, ni avocat, ni thérapeute : pour les questions sérieuses de santé, de "
        "droit ou d'argent, suggère de consulter un professionnel, et si quelqu'un semble en "
        "danger, incite-le à contacter immédiatement les services d'urgence."
    ),
    news=(
        "Tu parles de l'actualité récente de la technologie, du logiciel et de l'intelligence "
        "artificielle, à la manière d'un présentateur de journal radio : un ton posé et clair, "
        "un titre à la fois, puis un court commentaire et une question sur ce qu'en pense "
        "l'utilisateur. Tu n'as pas accès à Internet et tu ne connais donc pas l'actualité du "
        "jour : parle des évolutions et des tendances que tu connais, en disant à peu près de "
        "quand elles datent, et n'invente jamais de faits précis, de chiffres, de dates, de "
        "citations ni d'annonces. Si l'utilisateur évoque une nouvelle que tu ne connais pas, "
        "dis-le et demande-lui de te la raconter."
    ),
    explanation=(
        "Ton rôle est d'expliquer comment fonctionne cet agent vocal, à tout le monde, du "
        "curieux débutant à l'ingénieur, au niveau de l'utilisateur et avec tes propres mots. "
        "Les faits sur lesquels t'appuyer :\n"
        "La voix de l'utilisateur arrive à l'agent par une salle LiveKit, un service open "
        "source de son et de vidéo en temps réel ; n'importe quelle application ou page web "
        "LiveKit peut s'y connecter.\n"
        "Le modèle de reconnaissance vocale en continu de Kyutai transcrit l'utilisateur mot à "
        "mot pendant qu'il parle, et il prédit aussi quand l'utilisateur a fini son tour de "
        "parole d'après ce qu'il dit, et pas seulement d'après une durée fixe de silence. C'est "
        "la détection sémantique de fin de tour : l'agent évite ainsi de couper la parole ou "
        "d'attendre trop longtemps.\n"
        "La transcription part ensuite vers un modèle de langage textuel, qui écrit la réponse. "
        "N'importe quel modèle doté d'une interface compatible OpenAI convient, en local ou "
        "dans le cloud ; ce modèle, c'est toi.\n"
        "La réponse est envoyée mot à mot au modèle de synthèse vocale en continu de Kyutai, "
        "qui commence à parler avant que la réponse soit entièrement écrite, ce qui garde le "
        "délai court.\n"
        "Si l'utilisateur parle en même temps que l'agent, celui-ci s'arrête aussitôt et ne "
        "retient que les mots que l'utilisateur a vraiment entendus.\n"
        "Les modèles de parole tournent sur un serveur d'inférence qui traite de nombreuses "
        "conversations ensemble sur un seul GPU, et l'agent tourne dans un worker LiveKit "
        "Agents, un processus par salle. Tout le projet est open source.\n"
        "Commence par une vue d'ensemble en quelques phrases, puis approfondis ce qui intéresse "
        "l'utilisateur. N'invente pas de détails comme des résultats de mesures ou des dates de "
        "sortie."
    ),
    tutor=(
        "Tu es un tuteur en {subject}, niveau {level}. Commence par demander brièvement ce que "
        "l'élève sait déjà ou ce qu'il veut travailler, puis suis le plan ci-dessous en "
        "l'adaptant à ses réponses. Pose une seule question à la fois et attends la réponse. "
        "Donne des indices avant de donner les réponses. Quand l'élève répond, dis si c'est "
        "juste et explique brièvement pourquoi{record}.{progress}{lookup} Tu parles à voix "
        "haute : dis les formules, les symboles et le code en toutes lettres, lentement."
    ),
    tutor_plan=(
        "Le plan (rédigé en anglais : applique-le en français).\nObjectifs : {goals}\n"
        "Exercices de départ, un à la fois :\n{exercises}\nComment t'adapter : {adapt}"
    ),
    tutor_no_plan="Il n'y a pas de plan écrit pour cette matière : établis-en un toi-même.",
    tutor_record=" ; puis appelle l'outil record_answer avec le résultat",
    tutor_progress=(
        " Quand l'élève demande où il en est, ou avant de terminer, appelle l'outil "
        "learner_progress et résume ce qu'il a bien réussi et ce qu'il doit encore travailler."
    ),
    tutor_lookup=(
        " Si l'élève pose une question sur un terme que tu veux vérifier dans les notes de "
        "cours, tu peux appeler l'outil look_up_definition."
    ),
)

TEXTS: dict[str, _Texts] = {"en": _EN, "fr": _FR}


def texts_for(language: str) -> _Texts:
    return TEXTS.get(language, _EN)


# --- the prompt ---------------------------------------------------------------------------------


def _character_part(
    choice: RoomChoice,
    data: PromptData,
    t: _Texts,
    tools: Collection[str],
    now: datetime,
    rng: random.Random,
) -> str:
    character: Character = choice.character
    language = choice.language
    instructions = character.instructions
    parts: list[str] = [t.role_title]
    persona = instructions.persona_for(language)
    if persona:
        parts.append(persona.strip())

    if isinstance(instructions, ConstantInstructions):
        parts.append(instructions.text_for(language).strip())
    elif instructions.type == "smalltalk":
        parts.append(t.smalltalk)
        parts.append(
            t.smalltalk_time.format(
                weekday=_WEEKDAYS.get(language, _WEEKDAYS["en"])[now.weekday()],
                time_of_day=_TIMES_OF_DAY.get(language, _TIMES_OF_DAY["en"])[time_of_day(now)],
                clock=f"{now.hour:02d}:{now.minute:02d}",
            )
        )
        starter = pick_conversation_starter(data, language, rng)
        if starter:
            parts.append(t.smalltalk_starter.format(starter=starter))
    elif isinstance(instructions, QuizShowInstructions):
        questions = draw_quiz_questions(data, language, instructions.questions, rng)
        listed = "\n".join(
            t.quiz_question.format(number=i, question=q.question, answer=q.answer.rstrip("."))
            for i, q in enumerate(questions, start=1)
        )
        parts.append(
            t.quiz.format(
                count=number_words(len(questions), language),
                record=t.quiz_record if "record_answer" in tools else "",
                questions=listed,
            )
        )
    elif instructions.type == "life_advice":
        parts.append(t.life_advice)
    elif instructions.type == "news":
        parts.append(t.news)
    elif instructions.type == "explanation":
        parts.append(t.explanation)
    elif instructions.type == "tutor":
        subject = choice.subject or (character.subjects[0] if character.subjects else "")
        plan = data.tutor_plan(subject, choice.level)
        level = choice.level or (plan.level if plan else "")
        parts.append(
            t.tutor.format(
                subject=data.subject_name(subject, language),
                level=level_name(level, language),
                record=t.tutor_record if "record_answer" in tools else "",
                progress=t.tutor_progress if "learner_progress" in tools else "",
                lookup=t.tutor_lookup if "look_up_definition" in tools else "",
            )
        )
        if plan is None:
            parts.append(t.tutor_no_plan)
        else:
            parts.append(
                t.tutor_plan.format(
                    goals=plan.plan.goals.strip(),
                    exercises="\n".join(f"- {e}" for e in plan.plan.exercises),
                    adapt=plan.plan.adapt.strip(),
                )
            )
    return "\n".join(parts)


def build_system_prompt(
    choice: RoomChoice,
    data: PromptData,
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
    tools: Collection[str] | None = None,
    max_silent_turns: int,
) -> str:
    """The system prompt (the agent's instructions) for a room.

    ``now``: the local time for small talk (default: the machine's clock). ``rng``: draws the
    quiz questions and the conversation starter (default: unseeded). ``tools``: the tools the
    session actually gives the model (default: the character's ``tools``); the prompt mentions
    only these. ``max_silent_turns``: silences in a row after which the model says goodbye
    (keep it equal to the conversation code's setting).
    """
    now = datetime.now().astimezone() if now is None else now
    rng = random.Random() if rng is None else rng
    tools = choice.character.tools if tools is None else tools
    t = texts_for(choice.language)
    goodbye = GOODBYE.get(choice.language, GOODBYE["en"])
    has_end_call = "end_call" in tools

    sections = [
        t.intro,
        t.style,
        t.transcription,
        t.language,
        t.identity.format(name=choice.character.spoken_name),
        t.silence.format(
            silence=SILENCE_MESSAGE,
            max_silent=number_words(max_silent_turns, choice.language),
            how=t.silence_goodbye.format(goodbye=goodbye)
            + (t.silence_end_call if has_end_call else ""),
        ),
        t.end.format(goodbye=goodbye, how=t.end_call if has_end_call else t.end_no_tool),
    ]
    if "current_time" in tools:
        sections.append(t.current_time)
    sections.append(_character_part(choice, data, t, tools, now, rng))
    return "\n\n".join(sections)
