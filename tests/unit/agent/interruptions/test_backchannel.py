"""A short or one-word utterance over the agent is a backchannel, not an interruption."""

from __future__ import annotations

from agent.interruptions.backchannel import BackchannelFilter


def test_backchannel_rule() -> None:
    f = BackchannelFilter(max_s=0.6, min_words=2)
    f.user_started(agent_speaking=False)
    f.user_stopped(0.3)
    assert not f.is_backchannel("ok")  # the agent was not speaking: a normal turn
    f.user_started(agent_speaking=True)
    f.user_stopped(0.3)
    assert f.is_backchannel("mm hm yeah")  # short, over the agent
    f.user_started(agent_speaking=True)
    f.user_stopped(1.5)
    assert f.is_backchannel("yeah")  # long enough but a single word
    assert not f.is_backchannel("wait tell me about the moon")
    f.consumed()
    assert not f.is_backchannel("yeah")  # the next utterance starts fresh
