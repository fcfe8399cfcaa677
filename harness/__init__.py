"""Real local processes and simulated users: livekit-server, the inference server, the worker,
a stub LLM, WebRTC participants, spoken fixtures, join tokens.

Product infrastructure for a repository checkout, shared by the tests, the benches (`bench/`)
and the dev stack (`scripts/dev-stack.sh`); it never imports pytest."""
