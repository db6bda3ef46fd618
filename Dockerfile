# syntax=docker/dockerfile:1
# One Dockerfile, three images: `docker build --target operator|trainer|evaluator .`
# Each installs only its extra: the operator image has no torch, the trainer image has no kopf.

FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 1000 kubetune && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin kubetune
WORKDIR /app
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY trainer ./trainer
COPY evaluator ./evaluator

FROM base AS operator
RUN pip install ".[operator]"
USER 1000:1000
# /metrics and /healthz (charts/kubetune values operator.metricsPort, operator.healthPort)
EXPOSE 8080 8081
ENTRYPOINT ["kubetune", "operator"]

FROM base AS trainer
RUN pip install ".[trainer]"
USER 1000:1000
ENV HF_HUB_OFFLINE=1 HOME=/home/kubetune
EXPOSE 9400
ENTRYPOINT ["python", "-m", "kubetune_trainer"]

FROM base AS evaluator
RUN pip install ".[evaluator]"
USER 1000:1000
ENV HF_HUB_OFFLINE=1 HOME=/home/kubetune
EXPOSE 9400
ENTRYPOINT ["python", "-m", "kubetune_evaluator"]
