"""Guards: the stages of the pipeline, one module each."""
