"""Evidence bundles for security review: tamper-evident (hash chain), PII-safe, replayable."""
