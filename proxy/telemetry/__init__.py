"""OpenTelemetry for guardproxy: traces and metrics that split queue, upstream and guard time.

OpenTelemetry (and prometheus-client) live in this package and nowhere else. Build one
`Telemetry` (`Telemetry.from_env()`, or `Telemetry.for_tests(...)` with in-memory exporters) and
pass it to `create_app`; every name it emits is in `proxy.telemetry.names`.
"""

from proxy.telemetry.content import Capture
from proxy.telemetry.core import Telemetry
from proxy.telemetry.server import TelemetryMiddleware

__all__ = ["Capture", "Telemetry", "TelemetryMiddleware"]
