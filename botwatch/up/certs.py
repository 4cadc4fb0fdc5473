"""A private CA for `botwatch up --fleet` (and the tests): made at start, one certificate per listener, each
naming the addresses it is reached at. An operator's own deployment uses its own CA; this one exists so the
path botwatch tests is the encrypted one."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from botwatch.core.files import write_atomic

VALID_FOR = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class CA:
    """A self-signed ECDSA P-256 CA: `folder/ca.crt`, its key `folder/ca.key` (owner only) to issue more later
    (a host joining the fleet)."""

    def __init__(self, folder: Path, key, cert: x509.Certificate):
        self.folder, self._key, self._cert = Path(folder), key, cert
        self.cert = self.folder / "ca.crt"

    @classmethod
    def create(cls, folder: Path, name: str = "botwatch test CA") -> "CA":
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALID_FOR)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        ca = cls(folder, key, cert)
        ca.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(ca.cert, cert.public_bytes(serialization.Encoding.PEM).decode())
        _write_key(ca.folder / "ca.key", key)
        return ca

    @classmethod
    def load(cls, folder: Path) -> "CA":
        folder = Path(folder)
        key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
        return cls(folder, key, x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes()))

    def issue(self, name: str, addresses: list[str] = (), client: bool = False) -> Issued:
        """A certificate for `name` (a server reached at `addresses`: IPs or DNS names; or a client)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        names = []
        for address in addresses:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(address)))
            except ValueError:
                names.append(x509.DNSName(address))
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self._cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALID_FOR)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                         else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(self.folder / f"{name}.crt", self.folder / f"{name}.key")
        write_atomic(issued.cert, cert.public_bytes(serialization.Encoding.PEM).decode())
        _write_key(issued.key, key)
        return issued


def _write_key(path: Path, key) -> None:
    write_atomic(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(), private=True)
