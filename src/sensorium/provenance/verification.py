"""Checking a file's provenance: valid, tampered, unsigned, or signed by a key not trusted here.

Embedded manifests are validated by c2pa-python against this machine's trust anchors
(`identity.trusted_certificates`): "Trusted" is valid; "Invalid" (a content or claim hash that
does not match, a broken signature) is tampered; a sound signature from a certificate no anchor
issued is "unknown signer". A file signed here is also compared with the ledger's SHA-256, which
catches the manifest-store bytes a C2PA reader ignores. A sidecar is checked by its signature,
its chain against the same anchors, its canonical form and the file's SHA-256.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

VALID, TAMPERED, UNSIGNED, UNKNOWN_SIGNER = "valid", "tampered", "unsigned", "unknown signer"


@dataclass
class Verdict:
    state: str  # VALID, TAMPERED, UNSIGNED or UNKNOWN_SIGNER
    reasons: list[str] = field(default_factory=list)
    record: dict | None = None  # the Sensorium generation record, when one could be read
    signer: str | None = None  # the signing certificate's name
    carrier: str | None = None  # "embedded" or the sidecar's path

    def as_dict(self) -> dict:
        return {"state": self.state, "reasons": self.reasons, "signer": self.signer, "carrier": self.carrier,
                "record": self.record}


def verify(path: str | Path) -> Verdict:
    from .signing import EMBEDDED, sidecar_path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        return _verify_sidecar(path, sidecar)
    if path.suffix.lower() not in EMBEDDED:
        return Verdict(UNSIGNED, [f"no embedded manifest in this format and no {sidecar.name}"])
    return _verify_embedded(path)


def _verify_embedded(path: Path) -> Verdict:
    import c2pa

    from .identity import trusted_certificates
    from .record import ASSERTION
    from .signing import input_hash, ledger

    anchors = "".join(trusted_certificates())
    settings = {"verify": {"verify_trust": True}}
    if anchors:
        settings["trust"] = {"user_anchors": anchors}
    try:
        with c2pa.Context(c2pa.Settings.from_dict(settings)) as context, \
                c2pa.Reader(str(path), context=context) as reader:
            report = json.loads(reader.json())
    except c2pa.C2paError as error:
        text = str(error)
        if "ManifestNotFound" in text or "JumbfNotFound" in text:
            return Verdict(UNSIGNED, ["no C2PA manifest"])
        return Verdict(TAMPERED, [f"the manifest cannot be read: {text[:200]}"], carrier="embedded")
    manifest = (report.get("manifests") or {}).get(report.get("active_manifest"), {})
    record = next((a.get("data") for a in manifest.get("assertions", []) if a.get("label") == ASSERTION), None)
    signer = (manifest.get("signature_info") or {}).get("common_name")
    state = report.get("validation_state")
    codes = [s.get("code", "") for s in report.get("validation_status", []) or []]
    if state == "Invalid":
        return Verdict(TAMPERED, codes or ["the C2PA validation failed"], record, signer, "embedded")
    known = ledger().get(report.get("active_manifest"))
    if known is not None and known != input_hash(path):
        return Verdict(TAMPERED, ["bytes differ from the file as signed on this machine (ledger)"], record, signer,
                       "embedded")
    if state == "Trusted":
        return Verdict(VALID, codes, record, signer, "embedded")
    return Verdict(UNKNOWN_SIGNER, codes or ["signed by a certificate no trusted authority issued"], record, signer,
                   "embedded")


def _verify_sidecar(path: Path, sidecar: Path) -> Verdict:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from .identity import trusted_certificates
    from .signing import SIDECAR_KIND, canonical, input_hash

    raw = sidecar.read_bytes()
    try:
        document = json.loads(raw)
        body, signature = document["body"], base64.b64decode(document["signature"], validate=True)
        chain = x509.load_pem_x509_certificates(document["chain"].encode())
        if document.get("kind") != SIDECAR_KIND or raw != canonical(document):
            raise ValueError("not in canonical form")
    except Exception as error:  # noqa: BLE001 - whatever an altered document makes a parser raise is tampering
        return Verdict(TAMPERED, [f"{sidecar.name}: unreadable or altered ({type(error).__name__})"], carrier=str(sidecar))
    record = body.get("record") if isinstance(body, dict) else None
    signer = None
    try:  # a certificate's fields are parsed lazily: an altered one fails here, not at load
        _check_signature(chain[0].public_key(), signature,
                         canonical({k: v for k, v in document.items() if k != "signature"}))
        for child, parent in zip(chain, chain[1:]):
            child.verify_directly_issued_by(parent)
        signer = chain[0].subject.rfc4514_string()
    except Exception as error:  # noqa: BLE001 - InvalidSignature, or an altered certificate failing to parse
        return Verdict(TAMPERED, [f"signature does not match ({type(error).__name__})"], record, signer, str(sidecar))
    if body.get("sha256") != input_hash(path):
        return Verdict(TAMPERED, ["the file's bytes differ from those signed"], record, signer, str(sidecar))
    anchors = [x509.load_pem_x509_certificate(pem.encode()) for pem in trusted_certificates()]
    root = chain[-1].public_bytes(serialization.Encoding.DER)
    if any(anchor.public_bytes(serialization.Encoding.DER) == root for anchor in anchors):
        return Verdict(VALID, [], record, signer, str(sidecar))
    return Verdict(UNKNOWN_SIGNER, ["signed by a certificate no trusted authority issued"], record, signer, str(sidecar))


def _check_signature(public_key, signature: bytes, data: bytes) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

    if isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, data)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    else:
        public_key.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
