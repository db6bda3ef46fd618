"""The trainer's logging is the shared setup (kubetune_operator.api.logs); this name stays for
`kubetune train` (operator/kubetune_operator/cli/train.py), which imports it from here."""

from kubetune_operator.api.logs import configure_logging

__all__ = ["configure_logging"]
