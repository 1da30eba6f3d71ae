"""Message contracts, version 1, of the union federation services."""

from .catalogue import CONTRACT_VERSION, MESSAGES, TOPICS, MessageType, Topic, message_type, topic
from .codec import DecodeError, DecodeErrorCode, OutgoingEvent, decode, encode
from .envelope import CONTENT_TYPE, CloudEvent
from .rejections import CommandRejected, RejectionCode

__all__ = [
    "CONTENT_TYPE",
    "CONTRACT_VERSION",
    "MESSAGES",
    "TOPICS",
    "CloudEvent",
    "CommandRejected",
    "DecodeError",
    "DecodeErrorCode",
    "MessageType",
    "OutgoingEvent",
    "RejectionCode",
    "Topic",
    "decode",
    "encode",
    "message_type",
    "topic",
]
