"""characters.yaml and the dispatch metadata: one schema for the agent and the token service."""
