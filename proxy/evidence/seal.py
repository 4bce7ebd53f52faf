"""Sealed raw copies: the unredacted exchange, encrypted to a reviewer's public key.

A libsodium sealed box (X25519 + XSalsa20-Poly1305, via PyNaCl): the proxy holds only the public
key, so it can seal but never open; `guardproxy evidence show --reveal --key FILE` opens a copy
with the private key. Keys are 32 raw bytes stored as base64 text, one per file.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from proxy.errors import ConfigError

ALGORITHM = "libsodium-sealedbox-x25519-xsalsa20poly1305"


def read_key(path: Path, what: str) -> bytes:
    try:
        raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {path}: not a readable base64 key ({exc})") from exc
    if len(raw) != 32:
        raise ConfigError(f"{what} {path}: expected 32 bytes, found {len(raw)}")
    return raw


def fingerprint(public: bytes) -> str:
    return "sha256:" + hashlib.sha256(public).hexdigest()[:16]


class Sealer:
    def __init__(self, public_key_file: Path) -> None:
        self.public = read_key(public_key_file, "evidence seal public key")
        self._box = SealedBox(PublicKey(self.public))

    def seal(self, raw: dict[str, Any]) -> dict[str, str]:
        data = json.dumps(raw, sort_keys=True, ensure_ascii=False).encode()
        return {
            "algorithm": ALGORITHM,
            "recipient": fingerprint(self.public),
            "ciphertext": base64.b64encode(self._box.encrypt(data)).decode(),
        }


def open_sealed(sealed: dict[str, str], private_key_file: Path) -> dict[str, Any]:
    """Decrypt a bundle's sealed copy with the reviewer's private key."""
    private = PrivateKey(read_key(private_key_file, "private key"))
    if fingerprint(bytes(private.public_key)) != sealed.get("recipient"):
        raise ConfigError("this key is not the one the copy was sealed to "
                          f"(sealed to {sealed.get('recipient')})")
    try:
        data = SealedBox(private).decrypt(base64.b64decode(sealed["ciphertext"]))
    except (CryptoError, KeyError, ValueError) as exc:
        raise ConfigError(f"sealed copy does not open: {exc}") from exc
    opened: dict[str, Any] = json.loads(data)
    return opened


def generate_keypair(private_file: Path, public_file: Path) -> str:
    """Write a new key pair (the private file readable by its owner only); return the fingerprint."""
    key = PrivateKey.generate()
    private_file.write_text(base64.b64encode(bytes(key)).decode() + "\n", encoding="ascii")
    private_file.chmod(0o600)
    public_file.write_text(base64.b64encode(bytes(key.public_key)).decode() + "\n", encoding="ascii")
    return fingerprint(bytes(key.public_key))
