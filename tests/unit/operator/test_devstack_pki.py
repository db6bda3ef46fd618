"""The stack's certificates: what the API server and RBAC will see in them."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubetune_devtools.devstack.layout import StackLayout
from kubetune_devtools.devstack.pki import CA_NAME, CERTIFICATES, ETCD_CA_NAME, ensure_pki


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> StackLayout:
    layout = StackLayout(tmp_path_factory.mktemp("state"))
    ensure_pki(layout)
    return layout


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_every_certificate_is_signed_by_its_ca(layout: StackLayout) -> None:
    for ca_name in (CA_NAME, ETCD_CA_NAME):
        ca = load(layout.cert(ca_name))
        assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert load(layout.cert(CA_NAME)).subject != load(layout.cert(ETCD_CA_NAME)).subject
    for request in CERTIFICATES:
        ca = load(layout.cert(request.issuer))
        cert = load(layout.cert(request.name))
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)


def test_apiserver_certificate_names_loopback_and_in_cluster_service(layout: StackLayout) -> None:
    cert = load(layout.cert("apiserver"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "kubernetes.default.svc" in san.get_values_for_type(x509.DNSName)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages


def test_only_etcd_clients_hold_certificates_from_the_etcd_ca() -> None:
    from_etcd_ca = {request.name for request in CERTIFICATES if request.issuer == ETCD_CA_NAME}
    assert from_etcd_ca == {"etcd-server", "apiserver-etcd-client", "etcd-healthcheck-client"}


def test_client_certificates_carry_the_rbac_user_and_groups(layout: StackLayout) -> None:
    admin = load(layout.cert("admin")).subject
    assert [a.value for a in admin.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    scheduler = load(layout.cert("scheduler")).subject
    assert scheduler.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-scheduler"
    # Prometheus must not be an admin: it only gets a pod-reading ClusterRole.
    assert not load(layout.cert("prometheus")).subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)


def test_private_keys_are_private_and_a_second_run_changes_nothing(layout: StackLayout) -> None:
    before = {path: path.read_bytes() for path in layout.pki_dir.iterdir()}
    assert ensure_pki(layout) == []
    assert {path: path.read_bytes() for path in layout.pki_dir.iterdir()} == before
    for key in layout.pki_dir.glob("*.key"):
        assert key.stat().st_mode & 0o077 == 0, key


def test_a_missing_certificate_is_reissued_alone(tmp_path: Path) -> None:
    layout = StackLayout(tmp_path)
    ensure_pki(layout)
    ca_before = layout.cert("ca").read_bytes()
    layout.cert("scheduler").unlink()
    assert ensure_pki(layout) == ["scheduler"]
    assert layout.cert("ca").read_bytes() == ca_before
