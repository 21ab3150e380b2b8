"""RSA2 signing, AES-GCM fields, timestamps, the replay guard and
notification verification."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from atx.clock import now_ms
from atx.shop.payment.channel import (
    AmountMismatchError,
    ChannelClient,
    ChannelKeys,
    DecryptionError,
    EncryptedResource,
    ReplayGuard,
    SignatureError,
    StaleTimestampError,
    UnknownAppError,
    canonical,
    check_timestamp,
    decrypt_field,
    encrypt_field,
    load_or_create_keys,
    sign,
    signed,
    verify,
)
from atx.shop.payment.channel.protocol import format_time


def _notification(keys: ChannelKeys, **changes: str) -> dict[str, str]:
    params = {
        "notify_id": "n-1",
        "notify_time": format_time(now_ms()),
        "notify_type": "trade_status_sync",
        "app_id": "2021000000000001",
        "seller_id": "2088000000000001",
        "trade_no": "2026000001",
        "out_trade_no": "po-1",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "88.88",
        "gmt_payment": format_time(now_ms()),
        **changes,
    }
    return signed(params, keys.platform_private)


def test_canonical_form_sorts_and_skips_sign_and_empty() -> None:
    params = {"b": "2", "a": "1", "sign": "x", "sign_type": "RSA2", "empty": "", "C": "3"}
    assert canonical(params) == "C=3&a=1&b=2"


def test_sign_verify_round_trip_and_tamper(keys: ChannelKeys) -> None:
    message = signed({"out_trade_no": "po-1", "total_amount": "1.00"}, keys.platform_private)
    assert message["sign_type"] == "RSA2"
    assert verify(message, keys.platform_public)
    assert not verify({**message, "total_amount": "0.01"}, keys.platform_public)
    assert not verify({**message, "extra": "x"}, keys.platform_public)
    # The signature does not cover sign_type, but RSA2 is all we accept.
    assert not verify({**message, "sign_type": "RSA"}, keys.platform_public)


def test_forged_and_garbage_signatures_never_verify(keys: ChannelKeys) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = signed({"out_trade_no": "po-1"}, other)
    assert not verify(forged, keys.platform_public)
    for garbage in ("", "not base64!", base64.b64encode(b"short").decode(), "@@@@"):
        assert not verify({"out_trade_no": "po-1", "sign": garbage}, keys.platform_public)
    assert not verify({"out_trade_no": "po-1"}, keys.platform_public)
    assert sign({"a": "1"}, keys.merchant_private) == sign({"a": "1"}, keys.merchant_private)


def test_keys_are_created_once_and_reloaded(keys_dir: Path) -> None:
    first = load_or_create_keys(keys_dir, "ch")
    again = load_or_create_keys(keys_dir, "ch")
    message = signed({"a": "1"}, first.merchant_private)
    assert verify(message, again.merchant_public)
    assert first.aes_key == again.aes_key and len(first.aes_key) == 32
    assert (keys_dir / "ch_platform_public.pem").read_bytes().startswith(b"-----BEGIN PUBLIC")
    assert not verify(message, load_or_create_keys(keys_dir, "other").merchant_public)


def test_concurrent_first_use_by_two_processes_agrees(keys_dir: Path) -> None:
    script = (
        "import sys;from atx.shop.payment.channel import load_or_create_keys as l;"
        "k=l(sys.argv[1],'race');print(k.aes_key.hex())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(keys_dir)], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = {proc.communicate(timeout=60)[0] for proc in procs}
    assert len(outputs) == 1


def test_aes_gcm_round_trip_and_tamper_detection(keys: ChannelKeys) -> None:
    resource = encrypt_field(keys.aes_key, "buyer@example.com", associated_data="po-1")
    assert resource.ciphertext != "buyer@example.com"
    again = EncryptedResource.from_json(resource.to_json())
    assert decrypt_field(keys.aes_key, again) == "buyer@example.com"
    sealed = bytearray(base64.b64decode(resource.ciphertext))
    sealed[0] ^= 1
    tampered = [
        EncryptedResource(base64.b64encode(bytes(sealed)).decode(), resource.nonce, "po-1"),
        EncryptedResource(resource.ciphertext, resource.nonce, "po-2"),
        EncryptedResource(resource.ciphertext, base64.b64encode(b"0" * 12).decode(), "po-1"),
        EncryptedResource("!!", resource.nonce, "po-1"),
    ]
    for bad in tampered:
        with pytest.raises(DecryptionError):
            decrypt_field(keys.aes_key, bad)
    with pytest.raises(DecryptionError):
        decrypt_field(bytes(32), resource)
    with pytest.raises(DecryptionError):
        EncryptedResource.from_json("{not json")


def test_timestamp_window() -> None:
    now = now_ms()
    assert check_timestamp(format_time(now - 299_000), now) == now - 299_000
    for value in (format_time(now - 301_000), format_time(now + 301_000), "", "yesterday"):
        with pytest.raises(StaleTimestampError):
            check_timestamp(value, now)


def test_replay_guard(redis_url: str) -> None:
    guard, other_process = ReplayGuard(redis_url), ReplayGuard(redis_url)
    assert not guard.seen("alipay_sim", "n-1")
    assert guard.remember("alipay_sim", "n-1")
    assert other_process.seen("alipay_sim", "n-1")
    assert not other_process.remember("alipay_sim", "n-1")
    assert not guard.seen("wechat_sim", "n-1")
    guard.close()
    other_process.close()


def test_verify_notification(keys: ChannelKeys) -> None:
    client = ChannelClient("alipay_sim", "127.0.0.1:1", keys)
    good = _notification(keys)
    notification = client.verify_notification(good, 8888)
    assert notification.paid and notification.total_amount == 8888
    assert notification.out_trade_no == "po-1" and notification.notify_id == "n-1"

    forged = signed(dict(good), rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(SignatureError):
        client.verify_notification(forged, 8888)
    with pytest.raises(SignatureError):
        client.verify_notification({**good, "total_amount": "0.01"}, 8888)
    with pytest.raises(AmountMismatchError):
        client.verify_notification(_notification(keys, total_amount="0.01"), 8888)
    stale = _notification(keys, notify_time=format_time(now_ms() - 600_000))
    with pytest.raises(StaleTimestampError):
        client.verify_notification(stale, 8888)
    with pytest.raises(UnknownAppError):
        client.verify_notification(_notification(keys, app_id="2021999"), 8888)
    with pytest.raises(UnknownAppError):
        client.verify_notification(_notification(keys, seller_id="2088999"), 8888)
    client.close()


def test_amounts_and_deadlines() -> None:
    from atx.errors import InvalidArgumentError
    from atx.shop.payment.channel import channel_expire_ms
    from atx.shop.payment.channel.protocol import format_amount, parse_amount, parse_time

    assert format_amount(8888) == "88.88" and format_amount(5) == "0.05"
    assert parse_amount("88.88") == 8888 and parse_amount("1") == 100
    for bad in ("1.234", "-1", "abc", "NaN", ""):
        with pytest.raises(InvalidArgumentError):
            parse_amount(bad)
    now = now_ms()
    assert parse_time(format_time(now)) == now
    assert parse_time("2026-01-01 00:00:00") % 1000 == 0
    assert channel_expire_ms(0, 900_000) == 840_000  # a minute earlier
    assert channel_expire_ms(0, 1_000) == 900  # short lifetimes: a tenth earlier
