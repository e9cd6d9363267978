"""contextd as a Model Context Protocol server for coding agents (stdio and HTTP)."""
