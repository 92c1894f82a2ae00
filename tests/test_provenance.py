"""Signed provenance: what `sensorium speak`, `transcribe` and the reliability diagrams write carries a
manifest (C2PA embedded, or a signed sidecar), and `sensorium verify` tells valid, tampered,
unsigned and unknown signer apart, with the exit status of each."""
from __future__ import annotations

import datetime
import json
import os
import random
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sensorium.errors import ConfigError
from sensorium.provenance.record import generation, input_hash
from sensorium.provenance.signing import sidecar_path, sign_file
from sensorium.provenance.verification import TAMPERED, UNKNOWN_SIGNER, UNSIGNED, VALID, verify


@pytest.fixture(autouse=True)
def own_config(tmp_path, monkeypatch):
    """Each test its own signing identity, ledger and trust anchors (and none of the user's)."""
    monkeypatch.setenv("SENSORIUM_CONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("SENSORIUM_SIGNING_KEY", raising=False)
    monkeypatch.delenv("SENSORIUM_SIGNING_CHAIN", raising=False)


def flip(path: Path, out: Path, position: int, bit: int = 0) -> Path:
    data = bytearray(path.read_bytes())
    data[position] ^= 1 << bit
    out.write_bytes(bytes(data))
    return out


def test_speak_writes_a_signed_wav_that_verify_checks(tmp_path):
    from helpers.serve import run_cli

    out = tmp_path / "hello.wav"
    made = run_cli("speak", "Hello from the lab", "-o", str(out))
    assert made.returncode == 0 and "C2PA manifest embedded" in made.stdout, made.stderr
    key = tmp_path / "config" / "provenance" / "signing-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    checked = run_cli("verify", str(out), "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    verdict = json.loads(checked.stdout)
    assert verdict["state"] == VALID and verdict["record"]["action"] == "speak"
    assert verdict["record"]["inputs"]["text"] == input_hash("Hello from the lab")
    assert verdict["record"]["models"][0]["name"] == "espeak-ng" and len(verdict["record"]["models"][0]["sha256"]) == 64
    assert verdict["record"]["parameters"] == {"voice": "en-us", "rate_wpm": 160, "pitch": 50}

    samples, _ = soundfile.read(out)
    tampered = run_cli("verify", str(flip(out, tmp_path / "t.wav", 200)))  # in the sound
    assert tampered.returncode == 3 and "tampered" in tampered.stdout
    last = len(out.read_bytes()) - 1  # the manifest store comes last in the file
    assert run_cli("verify", str(flip(out, tmp_path / "m.wav", last))).returncode == 3

    plain = tmp_path / "plain.wav"
    soundfile.write(plain, samples, 16000)
    assert run_cli("verify", str(plain)).returncode == 4

    elsewhere = dict(os.environ, SENSORIUM_CONFIG=str(tmp_path / "another-machine"))
    import subprocess
    import sys

    other = subprocess.run([sys.executable, "-m", "sensorium.cli", "verify", str(out)], capture_output=True, text=True,
                           env=elsewhere, timeout=120)
    assert other.returncode == 5 and "unknown signer" in other.stdout


def test_random_byte_flips_are_all_detected(tmp_path):
    """The file as signed, then 150 single-bit flips anywhere in it (sound, headers and manifest):
    every one is reported tampered on the machine that signed it, and the untouched file stays valid."""
    from sensorium.experts.tts import info, save_wav, synthesize

    out = save_wav(synthesize("A short signed sentence."), tmp_path / "s.wav")
    sign_file(out, generation("speak", [info().as_dict()], {"text": input_hash("A short signed sentence.")}, {}))
    assert verify(out).state == VALID
    rng = random.Random(0)
    size = len(out.read_bytes())
    states = [verify(flip(out, tmp_path / "f.wav", rng.randrange(size), rng.randrange(8))).state for _ in range(150)]
    assert states.count(TAMPERED) == 150, {s: states.count(s) for s in set(states)}
    assert verify(out).state == VALID


def test_sidecar_for_text_catches_edits_to_the_file_and_to_itself(tmp_path):
    transcript = tmp_path / "notes.txt"
    transcript.write_text("[00:00:01.000] hello world\n")
    sidecar = sign_file(transcript, generation("transcribe", [], {"recording": "ab" * 32}, {"language": "en"}))
    assert sidecar == sidecar_path(transcript) and verify(transcript).state == VALID
    assert verify(transcript).record["parameters"] == {"language": "en"}

    transcript.write_text("[00:00:01.000] hello world!\n")
    assert verify(transcript).state == TAMPERED
    transcript.write_text("[00:00:01.000] hello world\n")
    assert verify(transcript).state == VALID

    original = sidecar.read_bytes()
    document = json.loads(original)
    document["body"]["record"]["parameters"]["language"] = "fr"
    sidecar.write_text(json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n")
    assert verify(transcript).state == TAMPERED  # the signature no longer matches
    sidecar.write_bytes(original.replace(b'"format":1', b'"format": 1'))
    assert verify(transcript).state == TAMPERED  # not canonical: any byte changed is an edit
    rng = random.Random(1)
    for _ in range(100):
        data = bytearray(original)
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        sidecar.write_bytes(bytes(data))
        assert verify(transcript).state == TAMPERED
    sidecar.unlink()
    assert verify(transcript).state == UNSIGNED


def test_a_users_own_key_and_chain(tmp_path, monkeypatch):
    """An ECDSA P-256 key with a chain from the user's own authority: files sign and verify valid;
    a chain that is not the key's is refused by name."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, issuer, public, signer, authority):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=authority, path_length=0 if authority else None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))
        if authority:
            builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        else:
            builder = (builder.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False))
        return builder.sign(signer, hashes.SHA256())

    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lab authority")])
    root = certificate(root_name, root_name, root_key.public_key(), root_key, True)
    leaf = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lab signer")]), root_name, key.public_key(),
                       root_key, False)
    pem = serialization.Encoding.PEM
    (tmp_path / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "chain.pem").write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    monkeypatch.setenv("SENSORIUM_SIGNING_KEY", str(tmp_path / "key.pem"))
    monkeypatch.setenv("SENSORIUM_SIGNING_CHAIN", str(tmp_path / "chain.pem"))

    wav = tmp_path / "tone.wav"
    soundfile.write(wav, (0.2 * np.sin(np.arange(8000) / 7)).astype(np.float32), 16000, subtype="PCM_16")
    sign_file(wav, generation("test", [], {}, {}))
    verdict = verify(wav)
    assert verdict.state == VALID and verdict.signer == "Lab signer"
    text = tmp_path / "t.txt"
    text.write_text("signed by the lab\n")
    sign_file(text, generation("test", [], {}, {}))
    assert verify(text).state == VALID

    monkeypatch.delenv("SENSORIUM_SIGNING_KEY")
    monkeypatch.delenv("SENSORIUM_SIGNING_CHAIN")
    assert verify(text).state == UNKNOWN_SIGNER  # this machine's own anchors do not include the lab's

    (tmp_path / "other.pem").write_bytes(root_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                                serialization.NoEncryption()))
    monkeypatch.setenv("SENSORIUM_SIGNING_KEY", str(tmp_path / "other.pem"))
    monkeypatch.setenv("SENSORIUM_SIGNING_CHAIN", str(tmp_path / "chain.pem"))
    with pytest.raises(ConfigError, match="first certificate is not the one"):
        sign_file(text, generation("test", [], {}, {}))


def test_transcribe_and_diagrams_are_signed(tmp_path):
    from helpers.serve import run_cli

    from sensorium.experts.tts import save_wav, synthesize

    save_wav(synthesize("Meet me at the station at noon."), tmp_path / "memo.wav")
    made = run_cli("transcribe", str(tmp_path / "memo.wav"), "-o", str(tmp_path / "memo.json"), timeout=300)
    assert made.returncode == 0 and "signed sidecar memo.json.provenance.json" in made.stdout, made.stderr
    segments = json.loads((tmp_path / "memo.json").read_text())["segments"]
    assert "station" in " ".join(s["text"].lower() for s in segments) and segments[0]["words"]
    verdict = verify(tmp_path / "memo.json")
    assert verdict.state == VALID and verdict.record["inputs"]["recording"] == input_hash(tmp_path / "memo.wav")
    assert verdict.record["models"][0]["name"].startswith("whisper")


def test_manifest_flips_are_caught_without_the_ledger(tmp_path, monkeypatch):
    """On a machine that trusts the signer but never saw the file signed (no ledger), flips inside the
    manifest store (zero padding, box types and labels a C2PA reader does not compare) still read
    as tampered, and the untouched file as valid."""
    import shutil

    from sensorium.experts.tts import save_wav, synthesize

    out = save_wav(synthesize("Signed elsewhere."), tmp_path / "e.wav")
    sign_file(out, generation("speak", [], {}, {}))
    other = tmp_path / "other-config"
    shutil.copytree(tmp_path / "config" / "provenance" / "trusted", other / "provenance" / "trusted")
    monkeypatch.setenv("SENSORIUM_CONFIG", str(other))
    assert verify(out).state == VALID
    data = out.read_bytes()
    start = data.find(b"jumb") - 4
    end = start + int.from_bytes(data[start:start + 4], "big")
    rng = random.Random(2)
    missed = []
    for _ in range(150):
        position, bit = rng.randrange(start, end), rng.randrange(8)
        if verify(flip(out, tmp_path / "f.wav", position, bit)).state != TAMPERED:
            missed.append(position - start)
    assert missed == [], missed
