#!/bin/sh
# Dockerfile helper (runs inside the builder stages): /opt/venv with exactly the hashed requirements in $1.
# --require-hashes --no-deps: every file is the one uv.lock names, nothing is resolved here.
# rouge-score ships only an sdist: it builds with the setuptools that the base's venv module brings
# (--no-build-isolation), not with whatever setuptools PyPI serves that day.
# kubetune.pth puts /opt/kubetune (the image's code, copied by the final stage) on sys.path.
# pip leaves the venv last: nothing installs at run time.
set -eu
requirements=$1
# Optional build secret `ca` (a TLS-intercepting proxy's CA bundle): used for the downloads only.
if [ -s /run/secrets/ca ]; then
    export PIP_CERT=/run/secrets/ca
fi
python3 -m venv /opt/venv
/opt/venv/bin/pip install --quiet --require-hashes --no-deps --no-build-isolation -r "$requirements"
purelib=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo /opt/kubetune >"$purelib/kubetune.pth"
/opt/venv/bin/python -m pip uninstall --quiet --yes pip
rm -rf "$requirements" /root/.cache
