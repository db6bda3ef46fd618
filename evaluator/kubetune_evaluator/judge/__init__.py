"""LLM-as-a-judge against any OpenAI-compatible chat-completions endpoint."""
