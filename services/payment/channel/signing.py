"""Signing and encryption for channel messages.

* RSA2 (SHA256withRSA, PKCS#1 v1.5) over Alipay's canonical form: drop
  ``sign`` and ``sign_type``, skip empty values, sort keys in ASCII order and
  join ``k=v`` with ``&``. Signatures are base64. The form is not escaped,
  so a receiver also checks it is unambiguous (:func:`check_unambiguous`).
* AES-256-GCM for sensitive fields, as a WeChat-v3 style resource
  ``{ciphertext, nonce, associated_data}``.
* Per-channel keys (:class:`ChannelKeys`) stored as PEM files, made on first use.
* A timestamp window check for notifications.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from atx.errors import InvalidArgumentError
from atx.shop.payment.channel.errors import (
    AmbiguousMessageError,
    DecryptionError,
    StaleTimestampError,
)
from atx.shop.payment.channel.protocol import parse_time

__all__ = [
    "SIGN_TYPE",
    "ChannelKeys",
    "EncryptedResource",
    "canonical",
    "check_timestamp",
    "check_unambiguous",
    "decrypt_field",
    "default_keys_dir",
    "encrypt_field",
    "load_or_create_keys",
    "sign",
    "signed",
    "verify",
]

SIGN_TYPE = "RSA2"
#: Notifications further than this from now are refused (WeChat v3: 5 min).
DEFAULT_WINDOW_S = 300.0
_UNSIGNED = frozenset({"sign", "sign_type"})
#: Keys as Alipay names them; never holding a separator.
_KEY = re.compile(r"[a-z][a-z0-9_]*")


def canonical(params: Mapping[str, str]) -> str:
    """The string that is signed: sorted ``k=v`` pairs, without sign fields
    or empty values."""
    pairs = sorted((k, v) for k, v in params.items() if k not in _UNSIGNED and v != "")
    return "&".join(f"{k}={v}" for k, v in pairs)


def check_unambiguous(params: Mapping[str, str]) -> None:
    """Refuse a message whose signed string also reads as another message.

    :func:`canonical` does not escape, so ``&`` in a value moves a field
    boundary without changing the signed bytes: ``notify_time=T&notify_type=X``
    is one field or two. With keys of ``[a-z][a-z0-9_]*`` and no ``&`` in a
    value, splitting the string at ``&`` and each piece at its first ``=``
    gives back exactly the signed fields, so one signature means one message.
    (``=`` in a value is then harmless, and base64 needs it.)
    """
    for key, value in params.items():
        if key in _UNSIGNED:
            continue
        if not _KEY.fullmatch(key):
            raise AmbiguousMessageError(key, "is not a key of the form [a-z][a-z0-9_]*")
        if "&" in value:
            raise AmbiguousMessageError(key, "has '&' in its value")


def sign(params: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> str:
    """The base64 RSA2 signature of ``params``."""
    signature = private_key.sign(
        canonical(params).encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()
    )
    return base64.b64encode(signature).decode("ascii")


def signed(params: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """A copy of ``params`` with ``sign_type=RSA2`` and its ``sign``."""
    out = {k: v for k, v in params.items() if k not in _UNSIGNED}
    out["sign_type"] = SIGN_TYPE
    out["sign"] = sign(out, private_key)
    return out


def verify(params: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    """Whether ``params["sign"]`` is a valid RSA2 signature; never raises."""
    try:
        if params.get("sign_type", SIGN_TYPE) != SIGN_TYPE:
            return False
        signature = base64.b64decode(params.get("sign", ""), validate=True)
        if not signature:
            return False
        public_key.verify(
            signature, canonical(params).encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()
        )
        return True
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False


def check_timestamp(value: str, now_ms: int, window_s: float = DEFAULT_WINDOW_S) -> int:
    """Refuse a timestamp more than ``window_s`` from ``now_ms``; returns it in ms."""
    try:
        moment = parse_time(value)
    except InvalidArgumentError:
        raise StaleTimestampError(value, window_s) from None
    if abs(now_ms - moment) > window_s * 1000:
        raise StaleTimestampError(value, window_s)
    return moment


# --- AES-256-GCM ----------------------------------------------------------------


@dataclass(frozen=True)
class EncryptedResource:
    """A WeChat-v3 style encrypted resource; every field is text (base64)."""

    ciphertext: str
    nonce: str
    associated_data: str
    algorithm: str = "AEAD_AES_256_GCM"

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> EncryptedResource:
        try:
            data = json.loads(text)
            return cls(
                ciphertext=str(data["ciphertext"]),
                nonce=str(data["nonce"]),
                associated_data=str(data.get("associated_data", "")),
                algorithm=str(data.get("algorithm", "AEAD_AES_256_GCM")),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise DecryptionError(f"not a resource: {error}") from None


def encrypt_field(key: bytes, plaintext: str, associated_data: str = "") -> EncryptedResource:
    """Encrypt ``plaintext`` with a fresh 12-byte nonce; ``associated_data`` is
    authenticated, not encrypted (bind it to e.g. the out_trade_no)."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), associated_data.encode())
    return EncryptedResource(
        ciphertext=base64.b64encode(sealed).decode("ascii"),
        nonce=base64.b64encode(nonce).decode("ascii"),
        associated_data=associated_data,
    )


def decrypt_field(key: bytes, resource: EncryptedResource) -> str:
    """The plaintext; :class:`DecryptionError` if anything was tampered with."""
    if resource.algorithm != "AEAD_AES_256_GCM":
        raise DecryptionError(f"unsupported algorithm {resource.algorithm!r}")
    try:
        nonce = base64.b64decode(resource.nonce, validate=True)
        sealed = base64.b64decode(resource.ciphertext, validate=True)
        plain = AESGCM(key).decrypt(nonce, sealed, resource.associated_data.encode())
        return plain.decode("utf-8")
    except InvalidTag:
        raise DecryptionError("authentication tag mismatch") from None
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise DecryptionError(str(error)) from None


# --- per-channel keys -------------------------------------------------------------


@dataclass(frozen=True)
class ChannelKeys:
    """The keys of one channel. We sign requests with the merchant key; the
    channel signs answers and notifications with its platform key. Both
    private keys sit in one directory only because the channel is simulated."""

    channel: str
    merchant_private: rsa.RSAPrivateKey
    platform_private: rsa.RSAPrivateKey
    #: The AES-256 key for encrypted resources (WeChat's APIv3 key).
    aes_key: bytes

    @property
    def merchant_public(self) -> rsa.RSAPublicKey:
        return self.merchant_private.public_key()

    @property
    def platform_public(self) -> rsa.RSAPublicKey:
        return self.platform_private.public_key()


def _check_channel_name(channel: str) -> None:
    if not channel or not all(c.isalnum() or c in "-_" for c in channel):
        raise InvalidArgumentError(f"bad channel name {channel!r}", channel=channel)


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    with open(temporary, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as out:
        out.write(data)
    os.replace(temporary, path)


def _private_key(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(
            path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        _write(
            path.with_name(path.name.replace("_private", "_public")),
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise InvalidArgumentError(f"{path} does not hold an RSA private key", path=str(path))
    return loaded


def default_keys_dir() -> Path:
    """Where the simulator and the payment service look for keys by default."""
    return Path(tempfile.gettempdir()) / "atx-channel-keys"


def load_or_create_keys(directory: str | Path, channel: str) -> ChannelKeys:
    """Load ``channel``'s keys from ``directory``, making missing ones.

    Files: ``<channel>_merchant_private.pem`` (+ ``_public``),
    ``<channel>_platform_private.pem`` (+ ``_public``), ``<channel>_aes.key``.
    A file lock makes concurrent first uses by several processes agree.
    """
    _check_channel_name(channel)
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{channel}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            merchant = _private_key(root / f"{channel}_merchant_private.pem")
            platform = _private_key(root / f"{channel}_platform_private.pem")
            aes_path = root / f"{channel}_aes.key"
            if not aes_path.exists():
                _write(aes_path, base64.b64encode(AESGCM.generate_key(bit_length=256)))
            aes_key = base64.b64decode(aes_path.read_bytes())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return ChannelKeys(channel, merchant, platform, aes_key)
