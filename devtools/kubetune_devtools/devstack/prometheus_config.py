"""Prometheus configuration: discover pods through the local API server and scrape annotated ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SCRAPE_INTERVAL = "2s"


def render_prometheus_config(
    api_server: str, ca_file: Path, cert_file: Path, key_file: Path, self_address: str
) -> dict[str, Any]:
    """Scrape every pod annotated `prometheus.io/scrape: "true"` (the common community convention),
    at `prometheus.io/port` (else its declared container port) and `prometheus.io/path` (else /metrics).
    """
    tls = {"ca_file": str(ca_file), "cert_file": str(cert_file), "key_file": str(key_file)}
    pods_job = {
        "job_name": "kubernetes-pods",
        "kubernetes_sd_configs": [{"role": "pod", "api_server": api_server, "tls_config": tls}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                "action": "keep",
                "regex": "true",
            },
            # Finished pods keep their IP in the API but nothing listens there any more.
            {
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "action": "drop",
                "regex": "Succeeded|Failed",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                "action": "replace",
                "target_label": "__metrics_path__",
                "regex": "(.+)",
            },
            {
                "source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                "action": "replace",
                "regex": r"([^:]+)(?::\d+)?;(\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [self_address]}]},
            pods_job,
        ],
    }


def write_prometheus_config(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
