"""Every telemetry name guardproxy emits, in one place: spans, attributes, metrics, buckets, env.

GenAI names follow OpenTelemetry semantic conventions v1.41.1 (still Development status); our
own live under `guardproxy.*`. A rename upstream therefore touches this file only.
"""

from __future__ import annotations

from typing import Final

# --- environment variables (read by proxy.telemetry.config) ---------------------------------
ENV_SDK_DISABLED: Final = "OTEL_SDK_DISABLED"
ENV_TRACES_EXPORTER: Final = "OTEL_TRACES_EXPORTER"
ENV_METRICS_EXPORTER: Final = "OTEL_METRICS_EXPORTER"
ENV_OTLP_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_OTLP_TRACES_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENV_OTLP_METRICS_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
ENV_OTLP_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
ENV_OTLP_TRACES_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
ENV_OTLP_METRICS_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
ENV_SERVICE_NAME: Final = "OTEL_SERVICE_NAME"
ENV_CAPTURE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_EMIT_EVENT: Final = "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"
DEFAULT_SERVICE_NAME: Final = "guardproxy"
INSTRUMENTATION_SCOPE: Final = "guardproxy"

# --- span names -------------------------------------------------------------------------------
SPAN_SCAN: Final = "guardrail.scan {direction}"  # INTERNAL, one per phase
SPAN_STAGE: Final = "guardrail.stage {stage}"  # INTERNAL, one per guard stage that ran
SPAN_QUEUE: Final = "queue wait"  # INTERNAL, only when the request actually waited
SPAN_RULES_CHANGE: Final = "guardproxy.rules.change"  # INTERNAL, its own trace: a rule set went live
SPAN_CHAT: Final = "{operation} {model}"  # CLIENT, the upstream call (semconv name format)
EVENT_FINDING: Final = "guardproxy.finding"
EVENT_TOOL_WITHHELD: Final = "guardproxy.tool.withheld"
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"

# --- semconv attributes [semconv v1.41.1] ------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TTFC: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"  # opt-in, redacted
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"  # opt-in, redacted
OPENAI_API_TYPE: Final = "openai.api.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_ROUTE: Final = "http.route"
URL_PATH: Final = "url.path"
URL_SCHEME: Final = "url.scheme"
CLIENT_ADDRESS: Final = "client.address"
USER_AGENT: Final = "user_agent.original"
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"  # [vendor] Arize/Phoenix

# --- guardproxy attributes [ours]: cheat sheet section 8 -----------------------------------------
QUEUE_WAIT_DURATION: Final = "guardproxy.queue.wait.duration"  # s; SERVER + queue wait
QUEUE_DEPTH: Final = "guardproxy.queue.depth"  # requests already waiting on arrival
QUEUE_OUTCOME: Final = "guardproxy.queue.outcome"  # acquired | timeout | rejected | cancelled
UPSTREAM_DURATION: Final = "guardproxy.upstream.duration"  # s; SERVER (= chat span)
UPSTREAM_REPORTED_PROCESSING: Final = "guardproxy.upstream.reported.processing.duration"
UPSTREAM_REPORTED_QUEUE: Final = "guardproxy.upstream.reported.queue.duration"
UPSTREAM_REPORTED_INFERENCE: Final = "guardproxy.upstream.reported.inference.duration"
GUARD_INPUT_DURATION: Final = "guardproxy.guard.input.duration"  # s; SERVER
GUARD_OUTPUT_DURATION: Final = "guardproxy.guard.output.duration"  # s; SERVER
GUARD_STAGE: Final = "guardproxy.guard.stage"
GUARD_DIRECTION: Final = "guardproxy.guard.direction"
GUARD_ACTION: Final = "guardproxy.guard.action"
GUARD_FINDINGS_COUNT: Final = "guardproxy.guard.findings.count"
GUARD_RULE_IDS: Final = "guardproxy.guard.rule_ids"
OVERHEAD_DURATION: Final = "guardproxy.overhead.duration"  # total - queue - upstream - guard
CLIENT_KEY_NAME: Final = "guardproxy.client.key_name"  # policy name, never the key
EVIDENCE_ID: Final = "guardproxy.evidence.id"
COVERAGE: Final = "guardproxy.coverage"  # complete | partial;uninspected=N (proxy.coverage)
COVERAGE_UNINSPECTED: Final = "guardproxy.coverage.uninspected"
TOOL_BLOCKED: Final = "guardproxy.tool.blocked"  # string[] on the chat span
# [ours] beyond section 8 (documented in the README's telemetry section)
REQUEST_DURATION: Final = "guardproxy.request.duration"  # s; SERVER: the measured total
REQUEST_ID: Final = "guardproxy.request.id"  # SERVER; spans only, never a metric attribute
GUARD_STATUS: Final = "guardproxy.guard.status"  # ok | error | timeout (stage span)
GUARD_VERDICT: Final = "guardproxy.guard.verdict"  # allow | transform | block (stage span)
ROUTE: Final = "guardproxy.route"  # metric attribute: the API route
SHED_REASON: Final = "guardproxy.shed.reason"  # queue_full | queue_timeout | evicted
FINDING_RULE_ID: Final = "guardproxy.finding.rule_id"
FINDING_CATEGORY: Final = "guardproxy.finding.category"
FINDING_SEVERITY: Final = "guardproxy.finding.severity"
FINDING_VECTOR: Final = "guardproxy.finding.vector"
FINDING_DECODING: Final = "guardproxy.finding.decoding"
FINDING_SEGMENT: Final = "guardproxy.finding.segment_index"
FINDING_MODE: Final = "guardproxy.finding.mode"
TOOL_NAME: Final = "gen_ai.tool.name"

# --- metrics -----------------------------------------------------------------------------------
M_CLIENT_DURATION: Final = "gen_ai.client.operation.duration"
M_CLIENT_TOKENS: Final = "gen_ai.client.token.usage"
M_CLIENT_TTFC: Final = "gen_ai.client.operation.time_to_first_chunk"
# guardproxy serves the GenAI API to its clients, so it reports these as the server its clients
# see (arrival at the proxy -> first token relayed / last byte), queue and guards included.
M_SERVER_TTFT: Final = "gen_ai.server.time_to_first_token"
M_SERVER_DURATION: Final = "gen_ai.server.request.duration"
M_HTTP_SERVER_DURATION: Final = "http.server.request.duration"
M_QUEUE_WAIT: Final = "guardproxy.queue.wait.duration"
M_QUEUE_DEPTH: Final = "guardproxy.queue.depth"
M_UPSTREAM_ACTIVE: Final = "guardproxy.upstream.active"
M_GUARD_DURATION: Final = "guardproxy.guard.duration"
M_GUARD_DECISIONS: Final = "guardproxy.guard.decisions"
M_GUARD_BLOCKS: Final = "guardproxy.guard.blocks"
M_FINDINGS: Final = "guardproxy.guard.findings"
M_RULES_CHANGES: Final = "guardproxy.rules.changes"  # rule sets that went live, by hash
RULES_HASH: Final = "guardproxy.rules.hash"
RULES_PREVIOUS: Final = "guardproxy.rules.previous_hash"
RULES_ADDED: Final = "guardproxy.rules.added"
RULES_REMOVED: Final = "guardproxy.rules.removed"
RULES_CHANGED: Final = "guardproxy.rules.changed"
RULES_FILES: Final = "guardproxy.rules.files"
M_TOOLS_WITHHELD: Final = "guardproxy.tool.withheld"
M_SHED: Final = "guardproxy.admission.shed"

# Advised bucket boundaries (semconv v1.41.1 and cheat sheet section 8).
B_GEN_AI_DURATION: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                            20.48, 40.96, 81.92)
B_TOKENS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                   16777216, 67108864)
B_SERVER_TTFT: Final = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                        2.5, 5.0, 7.5, 10.0)
B_HTTP_DURATION: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                          7.5, 10.0)
B_QUEUE_WAIT: Final = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
B_GUARD_DURATION: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)

# --- response headers [ours] ---------------------------------------------------------------------
H_QUEUE_MS: Final = "x-guardproxy-queue-ms"
H_UPSTREAM_MS: Final = "x-guardproxy-upstream-ms"
H_GUARD_MS: Final = "x-guardproxy-guard-ms"
H_SERVER_TIMING: Final = "server-timing"
