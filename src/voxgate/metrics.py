"""Prometheus metrics, served at GET /metrics (see README, Metrics).

Counters and histograms are recorded where things happen: HTTP requests by the request
middleware (`api/middleware.py`), turn stages by `observe_turn` when a turn is stored,
connections cut by the server guards (`server.py`). Lane and model gauges are read from
the pipeline when Prometheus scrapes (`PipelineCollector`), so they cost nothing between
scrapes. Everything lives in prometheus-client's default registry, with its process
metrics (memory, CPU, open files).
"""

from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from voxgate.lanes import lanes_of

disable_created_metrics()  # no `*_created` series: they double the series and no query here needs them

# Seconds; from a fast JSON answer to a long generated reply.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)

REQUESTS = Counter(
    "voxgate_http_requests", "HTTP requests answered, by route template and status.", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "voxgate_http_request_duration_seconds",
    "From a request's arrival to the end of its response (a stream: its last byte).",
    ["method", "route"],
    buckets=_SECONDS,
)
ERRORS = Counter(
    "voxgate_http_errors",
    "voxgate error responses by status and code (503 busy, loading, "
    "shutting_down; 429 rate_limited, too_many_logins; 413 too_large, ...).",
    ["status", "code"],
)
CONNECTIONS_CUT = Counter(
    "voxgate_connections_cut",
    "Connections the server cut: too many open, or a request's head or body too slow to arrive.",
    ["reason"],
)
TURN_SECONDS = Histogram(
    "voxgate_turn_stage_seconds", "Stages of stored turns (see README, Metrics).", ["stage"], buckets=_SECONDS
)
REALTIME_SESSIONS = Gauge("voxgate_realtime_sessions", "Open /v1/realtime sessions.")

# A turn's `timings` key (milliseconds) -> its stage label.
_STAGES = {
    "decode": "decode",  # reading the uploaded audio
    "stt": "stt",
    "llm": "llm",  # the whole reply generated
    "tts": "tts",  # all of the reply spoken (and encoded)
    "tts_first": "tts_first_chunk",  # the first clause spoken
    "first_audio": "first_audio",  # turn start -> first audio ready
    "speech_to_audio": "speech_to_audio",  # realtime: end of the user's speech -> first audio sent
    "turn_wait": "turn_wait",  # realtime: end of speech -> turn confirmed
    "total": "total",
}


def observe_turn(timings: dict) -> None:
    """Record a stored turn's stage times (its `timings`: milliseconds, None for a stage it
    did not need). `llm_first_token` is the time from the LLM's start to its first text:
    `first_text` (counted from the turn's start) minus the decoding and STT before it."""
    for key, stage in _STAGES.items():
        if (value := _ms(timings.get(key))) is not None:
            TURN_SECONDS.labels(stage).observe(value / 1000)
    if (first_text := _ms(timings.get("first_text"))) is not None:
        before = sum(_ms(timings.get(k)) or 0.0 for k in ("decode", "stt"))
        TURN_SECONDS.labels("llm_first_token").observe(max(0.0, first_text - before) / 1000)


def _ms(value: object) -> float | None:
    """A stage time, or None for anything else (a stage not run, the `interrupted` flag)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class PipelineCollector(Collector):
    """Lane places and loaded models of one pipeline, read at scrape time."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_flight = GaugeMetricFamily(
            "voxgate_lane_in_flight", "Model calls running or waiting, per lane.", labels=["lane"]
        )
        queued = GaugeMetricFamily(
            "voxgate_lane_queued", "Model calls waiting for a thread, per lane.", labels=["lane"]
        )
        capacity = GaugeMetricFamily(
            "voxgate_lane_capacity", "Places per lane: one more call is refused with 503 busy.", labels=["lane"]
        )
        for name, lane in lanes_of(self.pipeline).items():
            in_flight.add_metric([name], lane.in_flight)
            queued.add_metric([name], lane.queued)
            capacity.add_metric([name], lane.capacity)
        loaded = GaugeMetricFamily("voxgate_model_loaded", "1 for each model in memory.", labels=["model"])
        for name in self.pipeline.registry.loaded():
            loaded.add_metric([name], 1)
        yield from (in_flight, queued, capacity, loaded)
