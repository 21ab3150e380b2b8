"""Payment channels and their guards: the simulator, the merchant client,
signing and encryption, the circuit breaker, submission tokens, the job
runner and the recovery jobs.

How the payment service wires them (one set per process; all shared state
is in Redis or the database):

* keys = load_or_create_keys(keys_dir or default_keys_dir(), name) per channel;
  breaker = ChannelBreaker(redis_url, BreakerConfig(...));
  client = ChannelClient(name, address, keys, breaker=breaker).
* ListChannels: breaker.available_channels(names, user_id).
* CreatePayOrder: refuse unless breaker.allow(channel, user_id); then
  client.precreate(pay_order_id, amount, channel_expire_ms(created, expire),
  own_grpc_address) and store pay_url = result.qr_code.
* HandleNotification: client.verify_notification(params, pay_order.amount)
  (an unambiguous signed string, the signature, a strict parse of every
  field; typed errors: answer "fail", change nothing); if replay.seen(channel,
  notify_id): answer "success"; else process under a row lock, commit, then
  replay.remember(channel, notify_id) and answer "success". A paid
  notification for an order already paid by another pay order:
  resolve_double_payment(...) (or refund_payment) refunds it once.
* AbandonPayOrder: breaker.record_ignored(channel, user_id).
* QueryPayOrder: client.query(out_trade_no); if trade.paid: success processing.
* Jobs: runner = JobRunner(RedisJobLock(redis_url)); runner.register("compensation",
  lambda: compensate(repo, actions, clients, older_than_ms=...), interval_s);
  runner.register("timeout_close", lambda: close_expired(repo, actions,
  clients), interval_s); runner.start(); RunJob: runner.run_now(job).
* Order submission: SubmissionTokens(redis_url): issue / begin / complete / fail.
"""

from atx.shop.common.jobs import JobRun, JobRunner
from atx.shop.payment.channel.breaker import BreakerConfig, BreakerState, ChannelBreaker
from atx.shop.payment.channel.client import ChannelClient, PrecreateResult, RefundResult, TradeInfo
from atx.shop.payment.channel.errors import (
    AmbiguousMessageError,
    AmountMismatchError,
    AppIdRejectedError,
    ChannelRejectedError,
    ChannelUnavailableError,
    DecryptionError,
    DuplicateSubmissionInProgressError,
    IdempotencyMismatchError,
    NotificationFieldError,
    SignatureError,
    StaleTimestampError,
    SubmissionTokenNotFoundError,
    TradeNotFoundError,
    TradeStatusError,
    UnknownAppError,
    UnknownChannelError,
    UnknownJobError,
)
from atx.shop.payment.channel.jobs import RedisJobLock
from atx.shop.payment.channel.notification import Notification, verify_notification
from atx.shop.payment.channel.notify_fields import (
    ALIPAY_NOTIFICATION,
    NotificationFields,
    NotificationSchema,
    parse_notification,
)
from atx.shop.payment.channel.protocol import channel_expire_ms
from atx.shop.payment.channel.recovery import (
    PaymentActions,
    PayOrderRef,
    PayOrderRepository,
    close_expired,
    compensate,
)
from atx.shop.payment.channel.refunds import (
    DoublePaymentResolution,
    Payment,
    choose_kept,
    refund_number,
    refund_payment,
    resolve_double_payment,
)
from atx.shop.payment.channel.replay import ReplayGuard
from atx.shop.payment.channel.signing import (
    ChannelKeys,
    EncryptedResource,
    canonical,
    check_timestamp,
    check_unambiguous,
    decrypt_field,
    default_keys_dir,
    encrypt_field,
    load_or_create_keys,
    sign,
    signed,
    verify,
)
from atx.shop.payment.channel.simulator import ChannelSimulator, SimulatorConfig
from atx.shop.payment.channel.simulator_server import SimulatorServer, serve_simulator
from atx.shop.payment.channel.tokens import Replay, SubmissionTokens, fingerprint

__all__ = [
    "ALIPAY_NOTIFICATION",
    "AmbiguousMessageError",
    "AmountMismatchError",
    "AppIdRejectedError",
    "BreakerConfig",
    "BreakerState",
    "ChannelBreaker",
    "ChannelClient",
    "ChannelKeys",
    "ChannelRejectedError",
    "ChannelSimulator",
    "ChannelUnavailableError",
    "DecryptionError",
    "DoublePaymentResolution",
    "DuplicateSubmissionInProgressError",
    "EncryptedResource",
    "IdempotencyMismatchError",
    "JobRun",
    "JobRunner",
    "Notification",
    "NotificationFieldError",
    "NotificationFields",
    "NotificationSchema",
    "PayOrderRef",
    "PayOrderRepository",
    "Payment",
    "PaymentActions",
    "PrecreateResult",
    "RedisJobLock",
    "RefundResult",
    "Replay",
    "ReplayGuard",
    "SignatureError",
    "SimulatorConfig",
    "SimulatorServer",
    "StaleTimestampError",
    "SubmissionTokenNotFoundError",
    "SubmissionTokens",
    "TradeInfo",
    "TradeNotFoundError",
    "TradeStatusError",
    "UnknownAppError",
    "UnknownChannelError",
    "UnknownJobError",
    "canonical",
    "channel_expire_ms",
    "check_timestamp",
    "check_unambiguous",
    "choose_kept",
    "close_expired",
    "compensate",
    "decrypt_field",
    "default_keys_dir",
    "encrypt_field",
    "fingerprint",
    "load_or_create_keys",
    "parse_notification",
    "refund_number",
    "refund_payment",
    "resolve_double_payment",
    "serve_simulator",
    "sign",
    "signed",
    "verify",
    "verify_notification",
]
