"""Token service: mints scoped LiveKit room tokens that dispatch the Kyutai agent."""
