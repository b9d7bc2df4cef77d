"""The router's series, registered in the API's registry (so they appear on its `/metrics`).

    xgen_router_requests_total{model,code}          answers per model and HTTP status (429/503 included)
    xgen_router_in_flight{model}                    requests arrived and not finished (waiting ones too)
    xgen_router_time_to_first_byte_seconds{model}   histogram: request arrival -> first byte of the answer
    xgen_router_cold_start_seconds{model}           histogram: a request found the model stopped -> Ready
    xgen_router_evictions_total{model}              idle on-demand models stopped to make room for another
    xgen_router_idle_stops_total{model}             on-demand models stopped after idle_timeout
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["RouterMetrics"]

TTFB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
COLD_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter("xgen_router_requests", "Router answers per model and HTTP status",
                                ["model", "code"], registry=registry)
        self.in_flight = Gauge("xgen_router_in_flight", "Router requests in flight (waiting ones included)",
                               ["model"], registry=registry)
        self.ttfb = Histogram("xgen_router_time_to_first_byte_seconds", "Request arrival -> first byte",
                              ["model"], buckets=TTFB_BUCKETS, registry=registry)
        self.cold_start = Histogram("xgen_router_cold_start_seconds", "Stopped model requested -> Ready",
                                    ["model"], buckets=COLD_BUCKETS, registry=registry)
        self.evictions = Counter("xgen_router_evictions", "Idle on-demand models stopped to make room",
                                 ["model"], registry=registry)
        self.idle_stops = Counter("xgen_router_idle_stops", "On-demand models stopped after idle_timeout",
                                  ["model"], registry=registry)
