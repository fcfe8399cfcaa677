"""Duplex mode: Kyutai's Moshi listens and speaks at once; the agent adds captions, tools
raised from the words heard, and their results."""
