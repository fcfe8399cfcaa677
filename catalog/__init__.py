"""The catalogue: characters.yaml, the prompt data and the dispatch metadata, one schema for the
agent and the token service (``catalog.load.load_catalog`` is their one start-up check)."""
