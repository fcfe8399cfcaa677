"""When the agent yields to the user: one object that the session assembly builds once.

It holds the three pieces that decide interruptions (LiveKit's own VAD-based pause and resume
configured through `turn_handling`, the backchannel rule applied to final transcripts, and the
fast barge-in gate on energy onsets) and wires them where they act:

- the agent's STT node hands it every user frame (`on_user_audio`) and its transcripts
  (`filter_transcripts`);
- `attach(session)`, once the session runs, patches the room output (room_output.py) and
  follows the user's speech state for the backchannel timing; `close()` undoes the timers.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from livekit import rtc
from livekit.agents import stt

from agent.interruptions import room_output
from agent.interruptions.backchannel import BackchannelFilter
from agent.interruptions.barge_in import FastBargeIn, OnsetDetector, OnsetOptions, mono_samples
from agent.log import logger
from agent.settings import InterruptionSettings


class Interruptions:
    def __init__(self, options: InterruptionSettings) -> None:
        self.options = options
        self.backchannels = BackchannelFilter(
            options.backchannel_max_s, options.min_interruption_words
        )
        self._detector = (
            OnsetDetector(OnsetOptions(margin_db=options.fast_barge_in_margin_db))
            if options.fast_barge_in
            else None
        )
        self.gate: FastBargeIn | None = None
        self._session: Any = None
        self._speech_started = time.monotonic()

    @classmethod
    def from_settings(cls, options: InterruptionSettings) -> Interruptions:
        return cls(options)

    def turn_handling(self) -> dict[str, Any]:
        """AgentSession's `turn_handling`: end of turn and LiveKit's own interruption rules."""
        o = self.options
        return {
            "turn_detection": o.turn_detection,
            # Kyutai's pause heads already waited for the silence: don't add the default 0.5 s.
            "endpointing": {"min_delay": o.min_endpointing_delay_s, "max_delay": 3.0},
            "interruption": {
                "mode": "vad",  # "adaptive" would call LiveKit's cloud
                "min_duration": o.min_interruption_s,
                # Any voice pauses the agent at once; the backchannel rule decides afterwards
                # whether it was an interruption (words) or a backchannel (resume).
                "min_words": 0,
                "resume_false_interruption": True,
                "false_interruption_timeout": o.false_interruption_timeout_s,
            },
            "preemptive_generation": {"enabled": False},
        }

    # --- in the agent's STT node ---------------------------------------------------------

    def on_user_audio(self, frame: rtc.AudioFrame) -> None:
        """Each frame of the user's track, as it passes to the STT."""
        if self.gate is not None:
            self.gate.on_frame(frame)
        elif self._detector is not None:
            self._detector.push(mono_samples(frame), frame.sample_rate)  # learn the floor

    async def filter_transcripts(
        self, events: AsyncIterable[stt.SpeechEvent | str]
    ) -> AsyncIterator[stt.SpeechEvent | str]:
        """The STT's events without the final transcript of a backchannel said over the agent:
        LiveKit then resumes the paused agent instead of ending its reply."""
        async for event in events:
            if isinstance(event, stt.SpeechEvent) and (
                event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
            ):
                alt = event.alternatives[0] if event.alternatives else None
                text = alt.text if alt else ""
                if alt is not None and not self.backchannels.timed and alt.end_time > 0:
                    # The STT can end the turn before Silero ends the speech: its own word
                    # times say how long the user spoke.
                    self.backchannels.user_stopped(max(0.0, alt.end_time - alt.start_time))
                backchannel = self.backchannels.is_backchannel(text)
                self.backchannels.consumed()
                if backchannel:
                    logger.info("backchannel %r over the agent: not an interruption", text)
                    continue
            yield event

    # --- on the running session ----------------------------------------------------------

    def attach(self, session: Any) -> None:
        """Once `session.start()` returned: its output chain exists."""
        self._session = session
        session.on("user_state_changed", self._on_user_state)
        session.on("close", lambda _ev: self.close())
        observers = []
        if self._detector is not None and session.output.audio is not None:
            self.gate = FastBargeIn(session, detector=self._detector)
            self.gate.attach(session.output.audio)
            observers.append((self.gate.on_sink_pause, self.gate.on_sink_resume))
        if room_output.patch(session, observers=observers) is None:
            self.gate = None  # no room output to watch: LiveKit's own barge-in only

    def _on_user_state(self, ev: Any) -> None:
        if ev.new_state == "speaking":
            self._speech_started = time.monotonic()
            self.backchannels.user_started(agent_speaking=self._session.agent_state == "speaking")
        elif ev.old_state == "speaking":
            # The VAD reports the end of speech after vad_min_silence_s of silence.
            spoke_for = time.monotonic() - self._speech_started - self.options.vad_min_silence_s
            self.backchannels.user_stopped(spoke_for)
            logger.debug("user spoke %.2fs", spoke_for)

    def close(self) -> None:
        if self.gate is not None:
            self.gate.close()
