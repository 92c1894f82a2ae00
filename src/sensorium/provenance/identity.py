"""The signing identity: an Ed25519 key and a certificate chain, and the certificates trusted.

On first use a local certificate authority is made, issues one signing certificate, and its own
key is thrown away: the authority can never sign anything else, and what remains on disk is the
signing key (0600) and the chain (signing certificate + authority). The authority's certificate
is this machine's trust anchor; `sensorium verify` also trusts every PEM certificate put in
`CONFIG/provenance/trusted/` (another person's authority, a company's). A user brings their own
key and chain with `SENSORIUM_SIGNING_KEY` and `SENSORIUM_SIGNING_CHAIN` (PEM files).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..paths import config_home

KEY_FILE, CHAIN_FILE, TRUSTED_DIR = "signing-key.pem", "signing-chain.pem", "trusted"
VALID_YEARS = 10


@dataclass(frozen=True)
class Identity:
    key_pem: bytes  # PKCS#8 private key
    chain_pem: bytes  # signing certificate first, then its issuers
    algorithm: str  # "ed25519" (ours) or what the user's key is


def folder() -> Path:
    path = config_home() / "provenance"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def load_or_create() -> Identity:
    """The user's identity from the environment, else ours from the config folder, made when missing."""
    key_path, chain_path = os.environ.get("SENSORIUM_SIGNING_KEY"), os.environ.get("SENSORIUM_SIGNING_CHAIN")
    if key_path or chain_path:
        if not (key_path and chain_path):
            raise ConfigError("SENSORIUM_SIGNING_KEY and SENSORIUM_SIGNING_CHAIN: set both (PEM files), or neither")
        return _load(Path(key_path), Path(chain_path))
    here = folder()
    if not (here / KEY_FILE).is_file() or not (here / CHAIN_FILE).is_file():
        _create(here)
    return _load(here / KEY_FILE, here / CHAIN_FILE)


def _load(key_path: Path, chain_path: Path) -> Identity:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key_pem, chain_pem = key_path.read_bytes(), chain_path.read_bytes()
        key = serialization.load_pem_private_key(key_pem, password=None)
        chain = x509.load_pem_x509_certificates(chain_pem)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(f"{key_path} / {chain_path}: not a usable PEM private key and certificate chain ({error})") from error
    if isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = "ed25519"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = {256: "es256", 384: "es384", 521: "es512"}.get(key.curve.key_size, "")
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = "ps256"
    else:
        algorithm = ""
    if not algorithm:
        raise ConfigError(f"{key_path}: a C2PA signature needs an Ed25519, ECDSA (P-256/384/521) or RSA key")
    if chain[0].public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise ConfigError(f"{chain_path}: its first certificate is not the one of {key_path}")
    return Identity(key_pem, chain_pem, algorithm)


def _create(here: Path) -> None:
    """A one-use authority and the signing certificate it issues (both Ed25519), written atomically."""
    import getpass
    import socket

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        who = "unknown user"
    now = datetime.datetime.now(datetime.timezone.utc)
    until = now + datetime.timedelta(days=365 * VALID_YEARS)
    authority_key = ed25519.Ed25519PrivateKey.generate()
    authority = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sensorium"),
                           x509.NameAttribute(NameOID.COMMON_NAME, f"Sensorium local authority of {who}")])
    root = (x509.CertificateBuilder().subject_name(authority).issuer_name(authority)
            .public_key(authority_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(authority_key.public_key()), critical=False)
            .sign(authority_key, None))
    key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sensorium"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"Sensorium signer of {who}")])
    leaf = (x509.CertificateBuilder().subject_name(subject).issuer_name(authority).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()), critical=False)
            .sign(authority_key, None))
    pem = serialization.Encoding.PEM
    _write_private(here / KEY_FILE, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    _write(here / CHAIN_FILE, leaf.public_bytes(pem) + root.public_bytes(pem))
    trusted = here / TRUSTED_DIR
    trusted.mkdir(exist_ok=True)
    _write(trusted / "own-authority.pem", root.public_bytes(pem))


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def trusted_certificates() -> list[str]:
    """PEM text of every certificate this machine trusts as an issuer of signatures."""
    found = []
    trusted = folder() / TRUSTED_DIR
    for path in sorted(trusted.glob("*.pem")) if trusted.is_dir() else []:
        found.append(path.read_text())
    chain_path = os.environ.get("SENSORIUM_SIGNING_CHAIN")
    if chain_path:  # a user's own chain: its root is trusted for their own files
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            root = x509.load_pem_x509_certificates(Path(chain_path).read_bytes())[-1]
            found.append(root.public_bytes(serialization.Encoding.PEM).decode())
        except (OSError, ValueError) as error:
            raise ConfigError(f"{chain_path}: not a readable certificate chain ({error})") from error
    return found
