"""A private CA and server certificates for the simulator's HTTPS endpoint.

The CA is generated once per directory (and reused if the directory already holds one, so "same CA, new
leaf" and "new CA" are both possible between runs); the leaf certificate is issued for ``localhost`` and the
loopback address the server binds. Fingerprints are shown like PVE shows them (``AA:BB:…``, SHA-256).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_CERT = "pvesim-ca.pem"
CA_KEY = "pvesim-ca.key"
LEAF_CERT = "pve-ssl.pem"
LEAF_KEY = "pve-ssl.key"


def fingerprint_hex(cert_pem: bytes) -> str:
    """Lower-case hex SHA-256 of a PEM certificate's DER form (no separators)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.fingerprint(hashes.SHA256()).hex()


def fingerprint_colon(cert_pem: bytes) -> str:
    """SHA-256 fingerprint as PVE displays it: upper-case, colon separated."""
    hexed = fingerprint_hex(cert_pem).upper()
    return ":".join(hexed[i : i + 2] for i in range(0, len(hexed), 2))


@dataclass
class CertificateSet:
    """Paths of the CA and leaf files in one directory."""

    directory: Path
    #: distinguishes the leaf files of servers sharing one CA directory
    leaf_tag: str = ""

    @property
    def ca_path(self) -> Path:
        return self.directory / CA_CERT

    @property
    def cert_path(self) -> Path:
        return self.directory / (
            LEAF_CERT.replace(".pem", f"-{self.leaf_tag}.pem") if self.leaf_tag else LEAF_CERT
        )

    @property
    def key_path(self) -> Path:
        return self.directory / (
            LEAF_KEY.replace(".key", f"-{self.leaf_tag}.key") if self.leaf_tag else LEAF_KEY
        )

    def fingerprint(self) -> str:
        return fingerprint_colon(self.cert_path.read_bytes())

    def remove_leaf(self) -> None:
        self.cert_path.unlink(missing_ok=True)
        self.key_path.unlink(missing_ok=True)

    def ensure_ca(self, *, new: bool = False) -> None:
        """Create the CA unless one exists (or ``new`` forces a fresh one)."""
        if self.ca_path.exists() and (self.directory / CA_KEY).exists() and not new:
            return
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pvesim Proxmox Virtual Environment CA")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
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
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / CA_KEY).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue_leaf(self, host: str, node_name: str) -> None:
        """A new server certificate (new key, new fingerprint) signed by the CA."""
        self.ensure_ca()
        ca_key = serialization.load_pem_private_key((self.directory / CA_KEY).read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError("unexpected CA key type")
        ca_cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(node_name)]
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
        if host != "127.0.0.1":
            names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Node"),
                        x509.NameAttribute(NameOID.COMMON_NAME, node_name),
                    ]
                )
            )
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=700))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def reload(self, ctx: ssl.SSLContext) -> None:
        """Make new handshakes on ``ctx`` present the current leaf files."""
        ctx.load_cert_chain(self.cert_path, self.key_path)
