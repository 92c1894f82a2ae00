"""Checking a file's provenance: valid, tampered, unsigned, or signed by a key not trusted here.

Embedded manifests are validated by c2pa-python against this machine's trust anchors
(`identity.trusted_certificates`): "Trusted" is valid; "Invalid" (a content or claim hash that
does not match, a broken signature) is tampered; a sound signature from a certificate no anchor
issued is "unknown signer". A C2PA reader ignores a few bytes of the manifest store (the zero
padding reserved in the signature and hash boxes, the fixed tail of JUMBF box-type UUIDs), so
`strict_problems` checks those too, anywhere; a file signed here is also compared with the
ledger's SHA-256 of the whole file. A sidecar is checked by its signature,
its chain against the same anchors, its canonical form and the file's SHA-256.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

VALID, TAMPERED, UNSIGNED, UNKNOWN_SIGNER = "valid", "tampered", "unsigned", "unknown signer"
C2PA_UUID_TAIL = bytes.fromhex("00110010800000aa00389b71")  # JUMBF types are "fourcc" + this (C2PA 2.x, ISO 19566-5)
_PAD = re.compile(rb"cpad|dpad2")  # the CBOR text keys "pad" and "pad2": zero-filled byte strings by the spec
_LABELS = {b"c2pa": ("c2pa",), b"c2cl": ("c2pa.claim", "c2pa.claim.v2"), b"c2cs": ("c2pa.signature",),
           b"c2as": ("c2pa.assertions",)}  # the fixed labels of the store's own boxes (a reader finds them by type)


def strict_problems(data: bytes) -> list[str]:
    """What a C2PA reader lets through in a manifest store but the spec fixes: every JUMBF box fits
    its parent, C2PA box types end in the ISO UUID tail, and padding byte strings are all zeros."""
    start = data.find(b"jumb") - 4
    if start < 0:
        return ["no JUMBF manifest store"]
    store = data[start:start + int.from_bytes(data[start:start + 4], "big")]
    problems: list[str] = []

    def walk(boxes: bytes) -> None:
        pos = 0
        while pos < len(boxes):
            size, kind = int.from_bytes(boxes[pos:pos + 4], "big"), boxes[pos + 4:pos + 8]
            if size < 8 or pos + size > len(boxes):
                problems.append(f"a manifest box at {start + pos} has a size that does not fit ({size})")
                return
            payload = boxes[pos + 8:pos + size]
            if kind == b"jumb":
                walk(payload)
            elif kind == b"jumd":
                describe(payload)
            pos += size

    def describe(payload: bytes) -> None:
        fourcc = payload[:4]
        if fourcc.isalnum() and payload[4:16] != C2PA_UUID_TAIL:
            problems.append(f"the type of manifest box {fourcc.decode(errors='replace')!r} is altered")
        if fourcc in _LABELS:
            label = payload[17:].split(b"\0", 1)[0].decode("utf-8", errors="replace")
            if not payload[16] & 2 or label not in _LABELS[fourcc]:
                problems.append(f"the label of manifest box {fourcc.decode()!r} is altered ({label[:40]!r})")
        if fourcc == b"c2ma" and not payload[17:].startswith((b"urn:c2pa:", b"urn:uuid:")):
            problems.append("the label of the manifest is altered")

    walk(store)
    if b"c2pa.signature" in store and not _PAD.search(store[store.index(b"c2pa.signature"):]):
        problems.append("the signature's padding is missing")
    for match in _PAD.finditer(store):
        at = match.end()
        head = store[at] if at < len(store) else 0
        if head >> 5 != 2:  # not a byte string: the letters only happen to spell "pad"
            continue
        short = head & 31
        width = {24: 1, 25: 2, 26: 4}.get(short, 0)
        length = short if short < 24 else int.from_bytes(store[at + 1:at + 1 + width], "big")
        body = store[at + 1 + width:at + 1 + width + length]
        if body.count(0) != len(body):
            problems.append("the manifest's padding holds something other than zeros")
    return problems


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
    problems = strict_problems(path.read_bytes())
    if problems:
        return Verdict(TAMPERED, problems, record, signer, "embedded")
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
