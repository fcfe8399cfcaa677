"""How the worker is run and watched: capacity, health, metrics, recordings."""
