"""Detection rules: schema and loader, normalisation and decoding, the RE2 engine, the live store,
suppressions, corpus evaluation and the `guardproxy rules` CLI. See `rules/README.md`."""
