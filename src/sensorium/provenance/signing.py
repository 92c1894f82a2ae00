"""Signing a generated file: a C2PA manifest embedded where the format carries one, else a sidecar.

Embedded (WAV, PNG, JPEG, MP3, MP4, WebP ...): c2pa-python signs offline with the identity's key; a
C2PA reader anywhere can check it. Every byte of the media is covered by the manifest's hash, but a
C2PA reader ignores some bytes of the manifest store itself (its zero padding, the fixed parts of
box types and labels); `verification.strict_problems` checks those. The signer's ledger adds a
second net on the machine that signed: each signed file's full SHA-256 by its manifest id.

Sidecar (`FILE.provenance.json`, for text, JSON and other formats C2PA does not carry): the file's
SHA-256, the same record and the certificate chain, signed with the identity's key over their
canonical JSON; `verify` requires the sidecar to be byte-for-byte in canonical form.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from ..errors import ConfigError
from .identity import Identity, folder, load_or_create
from .record import c2pa_manifest, input_hash

SIDECAR_SUFFIX = ".provenance.json"
SIDECAR_KIND = "sensorium-provenance"
LEDGER_FILE = "ledger.jsonl"
EMBEDDED = {".wav": "audio/wav", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".mp3": "audio/mpeg", ".mp4": "video/mp4", ".m4a": "audio/mp4", ".webp": "image/webp",
            ".tif": "image/tiff", ".tiff": "image/tiff", ".avi": "video/x-msvideo", ".gif": "image/gif"}


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def canonical(data: dict) -> bytes:
    return (json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode()


def sign_file(path: str | os.PathLike, record: dict, identity: Identity | None = None) -> Path:
    """Sign the generated file at `path` in place (embedded) or beside it (sidecar); returns what
    now carries the signature."""
    path = Path(path)
    identity = identity or load_or_create()
    mime = EMBEDDED.get(path.suffix.lower())
    if mime is None:
        return _sidecar(path, record, identity)
    import c2pa

    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg=identity.algorithm.encode(), sign_cert=identity.chain_pem,
                                                       private_key=identity.key_pem, ta_url=None))
    signed = path.with_name(path.name + ".signing")
    try:
        settings = c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})  # the file is its own picture
        with c2pa.Context(settings) as context, \
                c2pa.Builder(json.dumps(c2pa_manifest(path.name, record)), context) as builder:
            builder.sign_file(str(path), str(signed), signer)
        os.replace(signed, path)
    except c2pa.C2paError as error:
        raise ConfigError(f"{path}: could not sign ({error})") from error
    finally:
        signed.unlink(missing_ok=True)
        signer.close()
    _remember(path)
    return path


def _sidecar(path: Path, record: dict, identity: Identity) -> Path:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(identity.key_pem, password=None)
    body = {"file": path.name, "sha256": input_hash(path), "record": record}
    document = {"format": 1, "kind": SIDECAR_KIND, "body": body, "algorithm": identity.algorithm,
                "chain": identity.chain_pem.decode()}
    signed = canonical(document)  # everything but the signature itself, the chain included
    signature = key.sign(signed) if identity.algorithm == "ed25519" else _sign_other(key, signed)
    document["signature"] = base64.b64encode(signature).decode()
    sidecar = sidecar_path(path)
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_bytes(canonical(document))
    os.replace(tmp, sidecar)
    return sidecar


def _sign_other(key, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


def active_manifest_id(path: Path) -> str | None:
    """The id of a file's active C2PA manifest (what the ledger is keyed by), or None."""
    import c2pa

    try:
        with c2pa.Reader(str(path)) as reader:
            return json.loads(reader.json()).get("active_manifest")
    except c2pa.C2paError:
        return None


def _remember(path: Path) -> None:
    """Append (manifest id, full SHA-256) to the signer's ledger."""
    entry = {"manifest": active_manifest_id(path), "sha256": input_hash(path), "file": path.name}
    with (folder() / LEDGER_FILE).open("a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(entry) + "\n")


def ledger() -> dict[str, str]:
    """Manifest id -> SHA-256 of the whole file as signed here."""
    path = folder() / LEDGER_FILE
    found: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                found[str(entry["manifest"])] = str(entry["sha256"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash: the other entries still count
    return found
