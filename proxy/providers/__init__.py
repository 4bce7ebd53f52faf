"""Provider adapters: one module per wire format, each a pure translation to and from the model."""
