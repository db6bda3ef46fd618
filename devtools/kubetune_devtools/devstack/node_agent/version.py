"""A fingerprint of the agent's own source, put on its Nodes: tests and people can tell whether the
running agent is the code of this checkout or an older process still running."""

from __future__ import annotations

import hashlib
from pathlib import Path

CODE_ANNOTATION = "kubetune.io/node-agent-code"


def code_fingerprint() -> str:
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]
