"""The Claude Code CLI: its command, its process, ready processes, its login and workspace."""
