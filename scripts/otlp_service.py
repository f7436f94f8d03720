#!/usr/bin/env python3
"""A simulated HTTP service instrumented with the OpenTelemetry Python SDK.

It records `http.server.request.duration` (seconds, with the HTTP semantic conventions'
attributes) for a steady stream of requests and writes log records through Python's
logging, inside spans so that the records carry trace and span ids, and exports both
with the OTLP/HTTP exporters of the SDK (protobuf or JSON) every second.

Halfway it "deploys" a new version: the providers of the old process are shut down and
new ones start with `service.version` changed, as a restarted process would. With
--bad, the new version fails --bad-error-rate of its requests and logs a new error.

Used by server/tests/otlp_e2e.rs (scripts/tests.d/45-otlp.sh), which runs it against a
real `watchdog serve`.
"""

import argparse
import logging
import random
import time

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

# The semantic conventions' advice for http.server.request.duration, in seconds.
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]


def exporters(encoding, endpoint, token):
    headers = {"Authorization": f"Bearer {token}"}
    if encoding == "protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        # gzip on the protobuf run, so that both encodings and compression are exercised.
        kw = {"headers": headers, "compression": Compression.Gzip}
    else:
        from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.json.http.metric_exporter import OTLPMetricExporter

        kw = {"headers": headers}
    return (
        OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", **kw),
        OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", **kw),
    )


class Process:
    """One running version: its meter, logger and tracer providers."""

    def __init__(self, args, version):
        resource = Resource.create(
            {
                "service.name": args.service,
                "service.version": version,
                "deployment.environment.name": args.environment,
            }
        )
        metric_exporter, log_exporter = exporters(args.encoding, args.endpoint, args.token)
        reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=args.interval_ms)
        self.meters = MeterProvider(resource=resource, metric_readers=[reader])
        self.logs = LoggerProvider(resource=resource)
        self.logs.add_log_record_processor(BatchLogRecordProcessor(log_exporter, schedule_delay_millis=500))
        self.tracer = TracerProvider(resource=resource).get_tracer("otlp_service")
        self.duration = self.meters.get_meter("otlp_service").create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=BUCKETS,
        )
        self.log = logging.getLogger(f"otlp_service.{version}")
        self.log.propagate = False
        self.log.setLevel(logging.INFO)
        self.handler = LoggingHandler(level=logging.INFO, logger_provider=self.logs)
        self.log.addHandler(self.handler)

    def shutdown(self):
        self.meters.shutdown()
        self.logs.shutdown()
        self.log.removeHandler(self.handler)


def run(args, process, secs, error_rate, bad, rng):
    per_tick = args.rate / 10.0
    end = time.time() + secs
    tick = 0
    carry = 0.0
    while time.time() < end:
        carry += per_tick
        n, carry = int(carry), carry - int(carry)
        for _ in range(n):
            failed = rng.random() < error_rate
            latency = rng.expovariate(1 / 0.040)
            attrs = {
                "http.request.method": "POST",
                "http.route": "/checkout",
                "http.response.status_code": 500 if failed else 200,
            }
            if failed:
                attrs["error.type"] = "500"
            process.duration.record(latency, attrs)
            if failed and bad:
                with process.tracer.start_as_current_span("POST /checkout"):
                    process.log.error(
                        "payment gateway timeout after %d ms for order %d", 3000, rng.randint(10000, 99999)
                    )
        if tick % 10 == 0:
            with process.tracer.start_as_current_span("POST /checkout"):
                process.log.info("handled /checkout for user %d", rng.randint(1, 5000))
        tick += 1
        time.sleep(0.1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True, help="WatchDog base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--token", required=True)
    p.add_argument("--encoding", choices=["protobuf", "json"], default="protobuf")
    p.add_argument("--service", default="checkout")
    p.add_argument("--environment", default="production")
    p.add_argument("--before-secs", type=float, default=45)
    p.add_argument("--after-secs", type=float, default=35)
    p.add_argument("--rate", type=float, default=60, help="requests per second")
    p.add_argument("--error-rate", type=float, default=0.01)
    p.add_argument("--bad", action="store_true", help="the new version fails requests")
    p.add_argument("--bad-error-rate", type=float, default=0.2)
    p.add_argument("--interval-ms", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    rng = random.Random(args.seed)

    v1 = Process(args, "1.4.1")
    run(args, v1, args.before_secs, args.error_rate, False, rng)
    v1.shutdown()
    v2 = Process(args, "1.4.2")
    print("deployed 1.4.2", flush=True)
    run(args, v2, args.after_secs, args.bad_error_rate if args.bad else args.error_rate, args.bad, rng)
    v2.shutdown()


if __name__ == "__main__":
    main()
