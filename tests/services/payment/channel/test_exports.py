"""The package's public names stay put, and every error code is unique."""

from __future__ import annotations

import atx.shop.payment.channel as channel
from atx.errors import AtxError, error_class
from atx.shop.payment.channel import errors


def test_public_names_are_exported() -> None:
    assert sorted(channel.__all__) == channel.__all__
    for name in channel.__all__:
        assert hasattr(channel, name), name
    assert {"ChannelClient", "ChannelBreaker", "JobRunner", "SubmissionTokens"} <= set(
        channel.__all__
    )


def test_error_codes_are_registered_and_unique() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes)
    for cls in classes:
        assert issubclass(cls, AtxError)
        assert error_class(cls.code) is cls
    assert errors.ChannelUnavailableError.retryable
    assert not errors.SignatureError.retryable
