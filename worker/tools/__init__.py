"""Client-defined tools: shown to the model through an MCP server, never run."""
