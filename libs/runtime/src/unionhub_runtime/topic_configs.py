"""IncrementalAlterConfigs (Kafka API 44, KIP-339) for topic configs, which aiokafka lacks.

aiokafka's `alter_configs` is the older AlterConfigs: it replaces every override a topic has,
so a tool must read the overrides and send them back, and one an operator sets between the
read and the write is lost. An incremental SET changes only the keys it names."""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String

TOPIC = 2  # resource type
SET = 0  # config operation


class IncrementalAlterConfigsResponse_v0(Response):  # type: ignore[misc]  # aiokafka untyped here
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class IncrementalAlterConfigsRequest_v0(RequestStruct):  # type: ignore[misc]
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = IncrementalAlterConfigsResponse_v0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                ("configs", Array(("name", String("utf-8")), ("config_operation", Int8), ("value", String("utf-8")))),
            ),
        ),
        ("validate_only", Boolean),
    )


class IncrementalAlterConfigsRequest(Request[IncrementalAlterConfigsRequest_v0]):  # type: ignore[misc]
    API_KEY = 44

    def __init__(self, resources: list[tuple[int, str, list[tuple[str, int, str]]]]) -> None:
        self._resources = resources

    def build(self, request_struct_class: type[IncrementalAlterConfigsRequest_v0]) -> IncrementalAlterConfigsRequest_v0:
        return request_struct_class(self._resources, False)


async def set_topic_configs(admin: AIOKafkaAdminClient, configs: Mapping[str, Mapping[str, str]]) -> None:
    """Sets, per topic, the configs given, leaving the topic's other overrides as they are.
    Raises with every topic the brokers refused (e.g. a principal without AlterConfigs)."""
    resources = [
        (TOPIC, topic, [(key, SET, value) for key, value in sorted(values.items())])
        for topic, values in configs.items()
    ]
    response = await admin._send_request(IncrementalAlterConfigsRequest(resources))
    failed = [(name, code, message) for code, message, _, name in response.responses if code]
    if failed:
        raise RuntimeError(f"altering topic configs failed: {failed}")
