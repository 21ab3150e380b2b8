"""The strict parse of a notification's signed fields, and the check that the
signed ``k=v&k=v`` string reads as one message only."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atx.clock import now_ms
from atx.errors import AtxError
from atx.shop.payment.channel import (
    AmbiguousMessageError,
    ChannelClient,
    ChannelKeys,
    NotificationFieldError,
    canonical,
    check_unambiguous,
    encrypt_field,
    parse_notification,
    signed,
    verify,
)
from atx.shop.payment.channel import protocol as p
from atx.shop.payment.channel.notify_fields import FIELD_PARSERS, parse_field

NOW = p.parse_time("2026-12-03 08:44:59.123")
AES_KEY = bytes(range(32))
RESOURCE = encrypt_field(AES_KEY, "buyer***@example.com", "po-1").to_json()
TIME_FIELDS = ("notify_time", "gmt_payment", "gmt_close")

#: One valid value of every parsed field, each in the form the channel sends.
VALID = {
    "notify_id": "ac05099524730693a8b330c5ecf72da9",
    "notify_time": "2026-12-03 08:44:59.123",
    "notify_type": "trade_status_sync",
    "app_id": p.DEFAULT_APP_ID,
    "seller_id": p.DEFAULT_SELLER_ID,
    "out_trade_no": "po-1",
    "trade_no": "2026120322001400001234567890",
    "trade_status": "TRADE_SUCCESS",
    "total_amount": "88.88",
    "gmt_payment": "2026-12-03 08:44:58.001",
    "gmt_close": "2026-12-03 08:44:59.000",
    "buyer_logon_id": RESOURCE,
    "sign_type": "RSA2",
}
#: Fields with a closed form: no suffix at all keeps them valid.
CLOSED_FORM = (*TIME_FIELDS, "notify_type", "trade_status", "total_amount", "sign_type")


def _params(**changes: str) -> dict[str, str]:
    params = {k: v for k, v in VALID.items() if k != "gmt_close"}
    params["sign"] = "c2lnbmF0dXJl"
    params.update(changes)
    return params


def _refused(key: str, value: str) -> None:
    with pytest.raises(NotificationFieldError) as refused:
        parse_field(key, value)
    assert refused.value.details["field"] == key


def test_every_parsed_field_has_a_valid_example() -> None:
    assert set(VALID) == set(FIELD_PARSERS)
    for key, value in VALID.items():
        parse_field(key, value)


def test_a_notification_parses_into_typed_fields() -> None:
    fields = parse_notification(_params())
    assert fields.notify_time_ms == NOW
    assert fields.total_amount == 8888 and fields.trade_status == p.TRADE_SUCCESS
    assert fields.gmt_payment_ms == NOW - 1122 and fields.gmt_close_ms is None
    assert fields.buyer_logon_id is not None and fields.buyer_logon_id.associated_data == "po-1"


@pytest.mark.parametrize("key", TIME_FIELDS)
@pytest.mark.parametrize(
    "value",
    [
        "2026-12-03 08:44:59.123zzz",  # garbage after the milliseconds
        "2026-12-03 08:44:59.1234",  # more digits than milliseconds
        "2026-12-03 08:44:59.12",
        "2026-12-03 08:44:59.",
        "2026-12-03T08:44:59",
        "2026-12-03 08:44:59Z",
        "2026-12-03 08:44:59+08:00",
        " 2026-12-03 08:44:59",
        "2026-12-03 08:44:59\n",
        "2026-12-3 08:44:59",
        "2026-13-03 08:44:59",
        "2026-02-30 08:44:59",
        "2026-12-03 24:00:00",
        "\uff12\uff10\uff12\uff16-12-03 08:44:59",  # fullwidth digits
        "2026-12-03 08:44:59.123&notify_type=trade_status_sync",
        "1764751499123",
    ],
)
def test_times_are_the_full_format_with_nothing_trailing(key: str, value: str) -> None:
    _refused(key, value)


def test_times_with_and_without_milliseconds() -> None:
    assert parse_field("notify_time", "2026-12-03 08:44:59") == NOW - 123
    assert parse_field("notify_time", "2026-12-03 08:44:59.123") == NOW
    assert p.parse_time(p.format_time(NOW)) == NOW


@pytest.mark.parametrize(
    "value",
    [
        *("088.88", "+1", "-1", "1e2", " 1", "1 ", "1_000", "NaN", "Infinity", "88.888"),
        *("88.", ".5", "\uff18\uff18", "1,00", "0x10", "88.88&x=1", ""),
    ],
)
def test_amounts_are_plain_yuan(value: str) -> None:
    _refused("total_amount", value)


def test_amounts_in_yuan() -> None:
    for value, minor in (("88.88", 8888), ("1", 100), ("0.5", 50), ("0.00", 0)):
        assert parse_field("total_amount", value) == minor


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("notify_type", "TRADE_STATUS_SYNC"),
        ("notify_type", "trade_status_sync "),
        ("notify_type", "batch_trans_notify"),
        ("trade_status", "PAID!!"),
        ("trade_status", "trade_success"),
        ("trade_status", "TRADE_SUCCESS\x00"),
        ("sign_type", "RSA"),
        ("buyer_logon_id", RESOURCE + " "),
        ("buyer_logon_id", RESOURCE.replace(",", ", ")),
        ("buyer_logon_id", "buyer***@example.com"),
    ],
)
def test_closed_values(key: str, value: str) -> None:
    _refused(key, value)


@pytest.mark.parametrize("key", ["notify_id", "app_id", "seller_id", "out_trade_no", "trade_no"])
@pytest.mark.parametrize("value", ["a&b", "a=b", "a b", "ünï", "x" * 129, "po-1\n"])
def test_identifiers(key: str, value: str) -> None:
    _refused(key, value)


def test_identifier_lengths() -> None:
    parse_field("notify_id", "n" * 128)
    parse_field("out_trade_no", "p" * 64)
    _refused("out_trade_no", "p" * 65)


@given(key=st.sampled_from(sorted(FIELD_PARSERS)), suffix=st.text(min_size=0, max_size=20))
def test_no_field_takes_a_separator(key: str, suffix: str) -> None:
    """A moved boundary shows as '&' or '=' inside a value: always refused."""
    for separator in ("&", "="):
        with pytest.raises(NotificationFieldError):
            parse_field(key, VALID[key] + separator + suffix)


@given(key=st.sampled_from(CLOSED_FORM), suffix=st.text(min_size=1, max_size=20))
def test_any_suffix_to_a_closed_form_field_is_refused(key: str, suffix: str) -> None:
    with pytest.raises(NotificationFieldError):
        parse_field(key, VALID[key] + suffix)


# --- required fields and statuses ------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "notify_id",
        "notify_time",
        "notify_type",
        "app_id",
        "seller_id",
        "trade_no",
        "out_trade_no",
        "trade_status",
        "total_amount",
        "sign_type",
        "sign",
        "gmt_payment",
    ],
)
@pytest.mark.parametrize("missing", ["absent", "empty"])
def test_required_fields(key: str, missing: str) -> None:
    params = _params()
    if missing == "absent":
        del params[key]
    else:
        params[key] = ""  # an empty value is not signed: the same as absent
    with pytest.raises(NotificationFieldError) as refused:
        parse_notification(params)
    assert refused.value.details["field"] == key
    assert "required" in refused.value.message


def test_a_payment_time_only_for_payments() -> None:
    parse_notification(_params(trade_status=p.TRADE_FINISHED))
    closed = _params(trade_status=p.TRADE_CLOSED)
    del closed["gmt_payment"]
    parse_notification(closed)
    parse_notification({**closed, "gmt_close": VALID["gmt_close"]})
    with pytest.raises(NotificationFieldError):
        parse_notification({**closed, "gmt_close": VALID["gmt_close"] + "zzz"})


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("PAID!!", "is not a trade status"),
        ("WAIT_BUYER_PAY", "is not final"),  # real, but we do not subscribe to it
        ("trade_success", "is not a trade status"),
    ],
)
def test_only_final_statuses(status: str, reason: str) -> None:
    with pytest.raises(NotificationFieldError) as refused:
        parse_notification(_params(trade_status=status))
    assert refused.value.details["field"] == "trade_status"
    assert reason in refused.value.message


def test_fields_nobody_reads_are_free_but_known_ones_are_parsed() -> None:
    parse_notification(_params(subject="card #7", fund_bill_list='[{"amount":"88.88"}]'))
    with pytest.raises(NotificationFieldError):
        parse_notification(_params(gmt_close="yesterday"))
    with pytest.raises(NotificationFieldError) as refused:
        parse_notification(_params(buyer_logon_id=encrypt_field(AES_KEY, "x", "po-2").to_json()))
    assert "another trade" in refused.value.message


# --- the signed string reads as one message only ---------------------------------


def test_unambiguous_keys_and_values() -> None:
    check_unambiguous({"a": "1", "b_2": "x=y==", "sign": "ab==", "sign_type": "RSA2"})
    for bad in ({"a&b": "1"}, {"a=b": "1"}, {"A": "1"}, {"": "1"}, {"_a": "1"}, {"a": "1&b=2"}):
        with pytest.raises(AmbiguousMessageError):
            check_unambiguous(bad)


_keys = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_values = st.text(min_size=1, max_size=12).filter(lambda v: "&" not in v)


@given(st.dictionaries(_keys, _values, max_size=8))
def test_an_unambiguous_message_is_the_only_reading_of_its_string(params: dict[str, str]) -> None:
    check_unambiguous(params)
    text = canonical(params)
    read = dict(piece.split("=", 1) for piece in text.split("&")) if text else {}
    assert read == params


# --- through verify_notification, with real signatures ----------------------------


def _genuine(keys: ChannelKeys, **changes: str) -> dict[str, str]:
    now = now_ms()
    params = {
        "notify_id": "n-1",
        "notify_time": p.format_time(now),
        "notify_type": "trade_status_sync",
        "app_id": p.DEFAULT_APP_ID,
        "seller_id": p.DEFAULT_SELLER_ID,
        "trade_no": "2026000001",
        "out_trade_no": "po-1",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "88.88",
        "gmt_payment": p.format_time(now),
        "buyer_logon_id": encrypt_field(keys.aes_key, "buyer", "po-1").to_json(),
        **changes,
    }
    return signed(params, keys.platform_private)


def test_moving_any_boundary_keeps_the_signature_and_is_refused(keys: ChannelKeys) -> None:
    client = ChannelClient("alipay_sim", "127.0.0.1:1", keys)
    genuine = _genuine(keys)
    assert client.verify_notification(genuine, 8888).paid
    signed_keys = sorted(k for k in genuine if k not in ("sign", "sign_type"))
    for before, folded in itertools.pairwise(signed_keys):
        # Field `folded` moves into the value of the field sorted before it.
        moved = {k: v for k, v in genuine.items() if k != folded}
        moved[before] = f"{genuine[before]}&{folded}={genuine[folded]}"
        assert canonical(moved) == canonical(genuine) and verify(moved, keys.platform_public)
        with pytest.raises(AmbiguousMessageError):
            client.verify_notification(moved, 8888)
    client.close()


def test_signed_garbage_is_refused_by_the_parse(keys: ChannelKeys) -> None:
    client = ChannelClient("alipay_sim", "127.0.0.1:1", keys)
    now = p.format_time(now_ms())
    for changes in (
        {"notify_time": now + "zzz"},
        {"notify_time": now + "999"},
        {"trade_status": "PAID!!"},
        {"trade_status": "WAIT_BUYER_PAY"},
        {"total_amount": "88.880"},
        {"notify_type": "trade_status_sync!"},
    ):
        with pytest.raises(NotificationFieldError):
            client.verify_notification(_genuine(keys, **changes), 8888)
    without_type = {k: v for k, v in _genuine(keys).items() if k not in ("sign", "sign_type")}
    del without_type["notify_type"]
    with pytest.raises(NotificationFieldError):
        client.verify_notification(signed(without_type, keys.platform_private), 8888)
    with pytest.raises(AtxError):  # an unsigned sign_type is still RSA2 only
        client.verify_notification({**_genuine(keys), "sign_type": "RSA"}, 8888)
    client.close()
