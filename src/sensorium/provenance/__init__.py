"""Signed provenance for what Sensorium generates: who made a file, with which models, from what.

`identity` holds the signing key and certificate chain (made on first use, or the user's own);
`record` describes a generation (generator, models with their SHA-256, inputs' hashes, parameters);
`signing` embeds a C2PA manifest (c2pa-python, offline, Ed25519) or writes a signed sidecar for
formats C2PA does not carry; `verification` says valid, tampered, unsigned, or signed by a key
this machine does not trust.
"""
