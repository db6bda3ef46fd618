"""kubetune operator, API models and CLI. Importing this package imports neither kopf nor torch."""
