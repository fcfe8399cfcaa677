"""python -m dispatcher: dispatches the agent again into rooms whose worker died."""
