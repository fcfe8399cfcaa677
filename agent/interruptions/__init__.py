"""When the agent yields: backchannel rule, fast barge-in, LiveKit room-output patches."""

from agent.interruptions.policy import Interruptions

__all__ = ["Interruptions"]
