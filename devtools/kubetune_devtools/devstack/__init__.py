"""The local development stack: a real Kubernetes control plane, MinIO S3 and Prometheus on loopback.

`kubetune dev up|down|env|status` and the e2e test fixtures both drive `kubetune_devtools.devstack.stack`.
"""
