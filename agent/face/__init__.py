"""The agent's face, as the room sees it: affect (an emotion label and a valence–arousal point)
estimated from what is said, published as participant attributes the widget renders."""
