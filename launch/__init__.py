"""Command-line entry points: ``python -m launch.<name>`` (prepare_data, train, ...)."""
