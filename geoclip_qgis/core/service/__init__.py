"""The front doors of the engine: the worker, the CLI, the Ray batch, evaluation."""
