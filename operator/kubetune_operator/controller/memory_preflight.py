"""The operator's memory preflight: a FineTuneJob that cannot fit its GPUs fails before any pod is created.

It runs when the job says how much memory each GPU has (`resources.gpuMemory`), asks for GPUs, and the
operator may read the model's config.json: the platform names one S3 endpoint (`--memory-preflight-endpoint`,
chart value `memoryPreflight.endpoint`) and gives the operator read access to it with its own credentials (the
AWS_* environment, IRSA). Only jobs whose `storage.endpoint` is that endpoint are checked: the operator never
reads a job's Secret values and never sends its credentials to an endpoint a user chose. Everything else
(no gpuMemory, no endpoint, another endpoint, config.json missing, unreadable, not a Llama-style decoder, S3
slow) skips the check with a log line: the trainer checks again before it loads weights (InsufficientMemory
from the pod), so a skipped preflight costs a pod start, never a wrong refusal.

The read is bounded: one GET of at most 256 KiB, 3-second timeouts, no retries, and each model's config is
cached for the operator's lifetime (the check runs on every reconcile until children exist).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kubetune_operator.api import FineTuneJobSpec
from kubetune_operator.api.memory import (
    ModelConfigError,
    ModelShape,
    choose_strategy,
    estimate,
    insufficient_message,
    options_that_fit,
    quantity_bytes,
    setup_for,
)
from kubetune_operator.api.naming import MAX_NODES
from kubetune_operator.controller import reasons
from kubetune_operator.controller.status import Transition

log = logging.getLogger(__name__)
MAX_CONFIG_BYTES: Final = 256 * 1024
TIMEOUT_SECONDS: Final = 3
AWS: Final = "aws"
"""The endpoint setting that means AWS S3 itself (jobs without storage.endpoint)."""


class ConfigUnavailableError(Exception):
    """config.json could not be read; the message says why (the preflight is skipped)."""


@lru_cache(maxsize=256)
def read_model_config(model_uri: str, endpoint: str | None, region: str) -> dict[str, Any]:
    """`<model_uri>/config.json` from S3 with the operator's credentials; ConfigUnavailableError otherwise."""
    parsed = urlparse(model_uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigUnavailableError(f"{model_uri} is not an s3:// URI")
    key = f"{parsed.path.strip('/')}/config.json".lstrip("/")
    config = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=TIMEOUT_SECONDS,
        read_timeout=TIMEOUT_SECONDS,
    )
    client = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)
    try:
        # A Range request: a config.json is a few KiB; a huge object is not read whole.
        response = client.get_object(Bucket=parsed.netloc, Key=key, Range=f"bytes=0-{MAX_CONFIG_BYTES}")
        body = response["Body"].read(MAX_CONFIG_BYTES + 1)
    except (BotoCoreError, ClientError) as error:
        raise ConfigUnavailableError(f"s3://{parsed.netloc}/{key}: {type(error).__name__}") from None
    if len(body) > MAX_CONFIG_BYTES:
        raise ConfigUnavailableError(f"s3://{parsed.netloc}/{key} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        loaded = json.loads(body)
    except ValueError:
        raise ConfigUnavailableError(f"s3://{parsed.netloc}/{key} is not JSON") from None
    if not isinstance(loaded, dict):
        raise ConfigUnavailableError(f"s3://{parsed.netloc}/{key} is not a JSON object")
    return loaded


def _endpoint_allowed(spec: FineTuneJobSpec, allowed: str | None) -> bool:
    if not allowed:
        return False
    if spec.storage.endpoint is None:
        return allowed == AWS
    return spec.storage.endpoint.rstrip("/") == allowed.rstrip("/")


ConfigReader = Callable[[str, "str | None", str], dict[str, Any]]


def memory_preflight(
    spec: FineTuneJobSpec,
    endpoint_setting: str | None,
    where: str,
    read_config: ConfigReader = read_model_config,
) -> Transition | None:
    """A Failed(InsufficientMemory) transition when the job cannot fit its GPUs, else None (fits, or the
    check was skipped: see the module docstring). `where`: namespace/name, for the log."""
    if spec.resources.gpu_memory is None or spec.resources.gpus_per_node < 1:
        return None
    if not _endpoint_allowed(spec, endpoint_setting):
        log.info("memory preflight of %s skipped: storage.endpoint is not the preflight endpoint", where)
        return None
    endpoint = None if spec.storage.endpoint is None else spec.storage.endpoint
    try:
        config = read_config(spec.model.uri, endpoint, spec.storage.region)
        shape = ModelShape.from_config(config)
    except (ConfigUnavailableError, ModelConfigError) as skipped:
        log.warning("memory preflight of %s skipped: %s", where, skipped)
        return None
    device_memory = quantity_bytes(spec.resources.gpu_memory)
    setup = setup_for(spec, "gpu")
    if spec.distributed.strategy == "auto":
        setup = setup_for(spec, "gpu", choose_strategy(shape, setup, device_memory))
    result = estimate(shape, setup)
    if result.fits(device_memory):
        return None
    options = options_that_fit(
        shape,
        setup,
        device_memory,
        processes_per_node=spec.resources.processes_per_node,
        max_nodes=MAX_NODES,
    )
    source = f"spec.resources.gpuMemory ({spec.resources.gpu_memory})"
    message = insufficient_message(result, device_memory, source, options) + "; no pods were created"
    return Transition("Failed", reasons.INSUFFICIENT_MEMORY, message)
