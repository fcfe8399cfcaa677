"""When the agent yields: backchannel rule, fast barge-in, LiveKit room-output patches."""
