"""custan plugin: the ``webhook`` output format, which posts rows to a URL.

``custan run rules.yaml --format webhook --output https://example.test/hook``
sends the rows as JSON batches; README.md lists the environment variables.
"""

from __future__ import annotations

from custan.hookspecs import hookimpl
from custan_webhook.sink import WebhookError, WebhookSettings, WebhookSink

__version__ = "0.1.0"


@hookimpl
def register_sinks(register):
    register("webhook", WebhookSink)


__all__ = ["WebhookError", "WebhookSettings", "WebhookSink"]
