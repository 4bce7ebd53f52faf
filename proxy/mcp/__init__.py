"""The MCP gateway: tool servers behind the same keys, scopes, taint, evidence and telemetry.

Each upstream server declared in `mcp_servers` is served at `/mcp/{name}` over Streamable HTTP.
The phase plan is the model API's turned around: a `tools/call` request is judged like a model's
tool call (scope, argument provenance) and its result is untrusted content judged like a
retrieved document (injection rules, quarantine), labelled `mcp:{server}/{tool}`.
"""
