# syntax=docker/dockerfile:1
# One Dockerfile, three images: operator, trainer, evaluator (`make images`, hack/build-images.sh, or
# `docker build --target <target> -t kubetune/<target>:<version> .`).
#
# What each image holds (tests/image/ checks it):
# - operator: Python, the locked `operator` extra, and kubetune_operator. No torch, no trainer or evaluator
#   code. (The dev-only code, devtools/kubetune_devtools, is never copied into any image.)
# - trainer / evaluator: one shared stage with the locked `trainer` + `evaluator` + `qlora` extras (torch with its
#   CUDA wheels is ~5.5 GB: installed once, its layers shared by both images), then only that image's
#   package plus the API models (kubetune_operator.api) it reads its manifest with.
# No image holds a compiler, pip, uv, a download cache, tests, hack/ or docs/; all run as uid 1000.
#
# BASE_IMAGE is NOT digest-pinned: it was written on a machine that cannot reach Docker Hub, so no digest
# could be looked up. Pin it when you build: --build-arg BASE_IMAGE=python:3.11-slim@sha256:<digest>.
# hack/build-images.sh uses a Debian 12 base made from Debian packages (mmdebstrap) when this one cannot
# be pulled. Any base works that has python3 = 3.11 with the venv module, groupadd and useradd.
#
# Behind a TLS-intercepting proxy pass its CA bundle as a build secret (never a layer):
#   --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt
ARG BASE_IMAGE=python:3.11-slim

# ---- Builder stages: only the requirement files and /opt/kubetune leave them. ----

# Hashed requirement files exported from uv.lock by the pinned uv (hack/uv-requirements.txt).
FROM ${BASE_IMAGE} AS lock
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY hack/uv-requirements.txt pyproject.toml uv.lock ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --quiet --require-hashes --no-deps -r uv-requirements.txt \
    && mkdir /req \
    && /opt/uv/bin/uv export --frozen --no-emit-project --no-default-groups --format requirements-txt --quiet \
        --extra operator -o /req/operator.txt \
    && /opt/uv/bin/uv export --frozen --no-emit-project --no-default-groups --format requirements-txt --quiet \
        --extra trainer --extra evaluator --extra qlora -o /req/torch.txt

# Each image's code, byte-compiled (the root filesystem is read-only in pods, so Python cannot cache
# bytecode at run time). The workload images hold their own package plus what they share: the API models
# and workload contract (kubetune_operator.api) and the torch-free data layer (kubetune_operator.data).
FROM ${BASE_IMAGE} AS code
COPY operator/kubetune_operator /src/kubetune_operator
COPY trainer/kubetune_trainer /src/kubetune_trainer
COPY evaluator/kubetune_evaluator /src/kubetune_evaluator
RUN set -eu \
    && mkdir -p /out/operator /out/trainer/kubetune_operator /out/evaluator/kubetune_operator \
    && cp -r /src/kubetune_operator /out/operator/ \
    && for image in trainer evaluator; do \
        cp -r /src/kubetune_operator/__init__.py /src/kubetune_operator/py.typed \
            /src/kubetune_operator/api /src/kubetune_operator/data /out/$image/kubetune_operator/; \
        cp -r /src/kubetune_$image /out/$image/; \
    done \
    && python3 -m compileall -q --invalidation-mode unchecked-hash /out

# ---- Final stages. ----

# The virtual environments are installed here, in the final images' own lineage, not in a builder stage
# and copied: nothing in them is compiled (all wheels but one pure-Python sdist), and copying 6 GB of torch
# out of a builder costs a minute on every warm build (the cache check hashes it) and 6 GB more disk.
# /opt/requirements.txt stays in the image: the exact locked versions and hashes it holds. kubetune.pth
# puts /opt/kubetune (the image's code) on sys.path; pip leaves the venv last (nothing installs at run
# time) and no download cache is kept.
FROM ${BASE_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 1000 kubetune \
    && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin kubetune
WORKDIR /home/kubetune

FROM runtime AS operator
COPY --from=lock /req/operator.txt /opt/requirements.txt
# After the install, what the operator never loads goes (no package offers just the part it needs), almost
# a third of the image: the kubernetes client's asyncio copy, kubernetes.aio (68 MB; kopf talks to the API
# through aiohttp, the operator through the sync client), and botocore's models of ~450 AWS services but S3
# (29 MB; the operator reads only S3, for the memory preflight). tests/image checks both still work.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --quiet --require-hashes --no-deps -r /opt/requirements.txt \
    && echo /opt/kubetune > /opt/venv/lib/python3.11/site-packages/kubetune.pth \
    && /opt/venv/bin/python -m pip uninstall --quiet --yes setuptools pip \
    && rm -rf /root/.cache \
    && rm -rf /opt/venv/lib/python3.11/site-packages/kubernetes/aio \
    && find /opt/venv/lib/python3.11/site-packages/botocore/data -mindepth 1 -maxdepth 1 -type d \
        ! -name s3 -exec rm -rf {} +
# The `kubetune` console script of pyproject.toml's [project.scripts] (the project itself is not
# pip-installed: that would put all three packages into every image).
RUN printf '#!/opt/venv/bin/python\nimport sys\n\nfrom kubetune_operator.cli import main\n\nsys.exit(main())\n' \
        > /opt/venv/bin/kubetune \
    && chmod 755 /opt/venv/bin/kubetune
COPY --from=code /out/operator /opt/kubetune
USER 1000:1000
# /metrics and /healthz (charts/kubetune values operator.metricsPort, operator.healthPort)
EXPOSE 8080 8081
ENTRYPOINT ["kubetune", "operator"]

# Shared by trainer and evaluator: one torch install, the same layers under both images.
FROM runtime AS torch-runtime
COPY --from=lock /req/torch.txt /opt/requirements.txt
# rouge-score ships only an sdist: it builds with the setuptools of the base's venv module
# (--no-build-isolation), not with whatever setuptools PyPI serves that day.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --quiet --require-hashes --no-deps --no-build-isolation \
        -r /opt/requirements.txt \
    && echo /opt/kubetune > /opt/venv/lib/python3.11/site-packages/kubetune.pth \
    && /opt/venv/bin/python -m pip uninstall --quiet --yes pip \
    && rm -rf /root/.cache
ENV HF_HUB_OFFLINE=1

FROM torch-runtime AS trainer
COPY --from=code /out/trainer /opt/kubetune
USER 1000:1000
EXPOSE 9400
ENTRYPOINT ["python", "-m", "kubetune_trainer"]

FROM torch-runtime AS evaluator
COPY --from=code /out/evaluator /opt/kubetune
USER 1000:1000
EXPOSE 9400
ENTRYPOINT ["python", "-m", "kubetune_evaluator"]
