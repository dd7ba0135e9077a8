"""The Anthropic Messages API on the wire: request models, limits, the rebuilt Message."""
