"""What the agent says: the agent class, history, prompt, wording, silence policy, tools."""
