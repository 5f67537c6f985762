"""The terminal client: `parley chat` / `parley ask`, its display and its MCP tools."""
