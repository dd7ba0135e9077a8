"""The OpenAI Chat Completions API, translated to and from the Messages API."""
