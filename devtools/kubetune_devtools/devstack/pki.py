"""The stack's certificate authority and certificates, generated once with `cryptography`.

Like a kubeadm cluster: one CA signs the API server's serving certificate and the client certificates
that authenticate each component (the Subject's CN is the user, O the groups RBAC sees), and a
separate RSA key pair signs ServiceAccount tokens. etcd has a CA of its own, as in kubeadm: etcd
trusts every certificate its CA signed, so the cluster CA (whose key the controller-manager holds to
sign CSRs) must not be the one that grants access to etcd.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubetune_devtools.devstack.layout import StackLayout

CA_NAME = "ca"
ETCD_CA_NAME = "etcd-ca"
APISERVER_KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"
SERVICE_ACCOUNT_KEY_NAME = "service-account"
VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class CertRequest:
    """One certificate the stack needs: `groups` become O= entries, `hosts` subjectAltNames."""

    name: str
    common_name: str
    groups: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    server: bool = False
    client: bool = True
    issuer: str = CA_NAME


# The apiserver's own in-cluster names, so pods reaching https://kubernetes.default.svc validate it too.
APISERVER_HOSTS = (
    "127.0.0.1",
    "localhost",
    "10.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

CERTIFICATES = (
    CertRequest("apiserver", "kube-apiserver", hosts=APISERVER_HOSTS, server=True, client=False),
    # system:masters is what kubeadm gives its admin.conf: cluster-admin through the bootstrap RBAC.
    CertRequest("admin", "kubetune-admin", groups=("system:masters",)),
    CertRequest("controller-manager", "system:kube-controller-manager"),
    CertRequest("scheduler", "system:kube-scheduler"),
    # The node agent's log endpoint lets in this CN and no other.
    CertRequest("apiserver-kubelet-client", APISERVER_KUBELET_CLIENT_CN, groups=("kubeadm:cluster-admins",)),
    # Lets the API server proxy to aggregated API servers, as in any kubeadm cluster (and keeps the
    # components from logging that the request-header CA is missing).
    CertRequest("front-proxy-client", "front-proxy-client"),
    # Prometheus only gets a ClusterRole to list/watch pods (applied once the API server is up).
    CertRequest("prometheus", "kubetune:prometheus"),
    # etcd serves clients and its (single) peer port with TLS and requires client certificates from
    # its own CA; its certificate is also its peer client certificate, hence both usages.
    CertRequest(
        "etcd-server", "kube-etcd", hosts=("127.0.0.1", "localhost"), server=True, issuer=ETCD_CA_NAME
    ),
    CertRequest("apiserver-etcd-client", "kube-apiserver-etcd-client", issuer=ETCD_CA_NAME),
    # Only `kubetune dev up`'s readiness probe of etcd's /health.
    CertRequest("etcd-healthcheck-client", "kube-etcd-healthcheck-client", issuer=ETCD_CA_NAME),
)


def _name(common_name: str, groups: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def generate_ca(now: datetime.datetime, common_name: str = "kubetune-dev-ca") -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def issue_certificate(
    request: CertRequest, ca_cert_pem: bytes, ca_key_pem: bytes, now: datetime.datetime
) -> tuple[bytes, bytes]:
    """A leaf certificate signed by the CA: (certificate PEM, key PEM)."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the stack's CA key must be an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    usages = []
    if request.server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if request.client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(request.common_name, request.groups))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if request.hosts:
        builder = builder.add_extension(_san(request.hosts), critical=False)
    return _pem_cert(builder.sign(ca_key, hashes.SHA256())), _pem_key(key)


def generate_service_account_key() -> tuple[bytes, bytes]:
    """RSA key pair for ServiceAccount token signing: (public PEM, private PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public, _pem_key(key)


def _write_private(files: list[tuple[Path, bytes]]) -> None:
    for path, data in files:
        path.write_bytes(data)
        path.chmod(0o600)


def ensure_pki(layout: StackLayout) -> list[str]:
    """Create whatever certificate or key is missing; returns the names it created.

    Existing files are kept, so a restarted stack keeps trusting the kubeconfigs handed out before.
    """
    layout.pki_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    created: list[str] = []
    for ca_name, common_name in ((CA_NAME, "kubetune-dev-ca"), (ETCD_CA_NAME, "kubetune-dev-etcd-ca")):
        if not layout.cert(ca_name).exists():
            cert, key = generate_ca(now, common_name)
            _write_private([(layout.key(ca_name), key), (layout.cert(ca_name), cert)])
            created.append(ca_name)
    for request in CERTIFICATES:
        if layout.cert(request.name).exists() and layout.key(request.name).exists():
            continue
        ca_cert, ca_key = layout.cert(request.issuer).read_bytes(), layout.key(request.issuer).read_bytes()
        cert, key = issue_certificate(request, ca_cert, ca_key, now)
        _write_private([(layout.key(request.name), key), (layout.cert(request.name), cert)])
        created.append(request.name)
    sa_public = layout.pki_dir / f"{SERVICE_ACCOUNT_KEY_NAME}.pub"
    if not sa_public.exists():
        public, private = generate_service_account_key()
        _write_private([(layout.key(SERVICE_ACCOUNT_KEY_NAME), private), (sa_public, public)])
        created.append(SERVICE_ACCOUNT_KEY_NAME)
    return created
