"""SASL/SCRAM and TLS settings of every Kafka client, from the EMC_KAFKA_* settings.

One function per client library builds the keyword arguments, so that the ingest consumer and
producer (aiokafka), Faust's clients, the control feed, the CLI producers and readers
(kafka-python) and explain's reader all connect the same way.
"""

from __future__ import annotations

import ssl

from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying TLS context (the CA file, else the system's) when the protocol uses TLS."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ca_file or None)
    if settings.kafka_cert_file:
        context.load_cert_chain(settings.kafka_cert_file, settings.kafka_key_file)
    return context


def aiokafka_security(settings: Settings) -> dict[str, object]:
    """Keyword arguments for AIOKafkaConsumer / AIOKafkaProducer / AIOKafkaAdminClient."""
    kwargs: dict[str, object] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_username,
                      sasl_plain_password=settings.kafka_password)
    return kwargs


def kafka_python_security(settings: Settings) -> dict[str, object]:
    """Keyword arguments for kafka-python's KafkaProducer / KafkaConsumer / KafkaAdminClient."""
    return aiokafka_security(settings)  # the same names in both libraries


def faust_credentials(settings: Settings) -> object | None:
    """Faust's `broker_credentials`, or None for a plaintext broker."""
    import faust
    from faust.types.auth import SASLMechanism

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = SASLMechanism(settings.kafka_sasl_mechanism)  # the same names as Kafka's
    return faust.SASLCredentials(username=settings.kafka_username, password=settings.kafka_password,
                                 mechanism=mechanism, ssl_context=context)
