"""Tracing interop with OpenTelemetry Python: W3C context both ways, OTLP JSON that the
``opentelemetry-proto`` protobuf classes parse strictly, and an OTLP/HTTP receiver."""

import asyncio
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import opentelemetry.trace as otel_trace  # installed by scripts/bootstrap.sh; no skip
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import (
    TraceContextTextMapPropagator,
)

import nimsync

PROPAGATOR = TraceContextTextMapPropagator()


@pytest.fixture(autouse=True)
def fresh_tracing():
    yield
    nimsync.tracing_shutdown()


@pytest.fixture
def otel():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("interop-test"), exporter
    provider.shutdown()


def test_nimsync_traceparent_continues_in_otel(otel):
    tracer, exporter = otel
    nimsync.tracing_init(sampling_rate=1.0)
    with nimsync.span("client call", kind="client") as s:
        carrier = {"traceparent": nimsync.traceparent()}
    ctx = PROPAGATOR.extract(carrier)
    with tracer.start_as_current_span("server handler", context=ctx) as o:
        pass
    (done,) = exporter.get_finished_spans()
    assert done.context.trace_id == int(s.trace_id, 16)
    assert done.parent.span_id == int(s.span_id, 16)
    assert done.parent.is_remote
    assert o.get_span_context().trace_flags.sampled


def test_unsampled_nimsync_trace_stays_unsampled_in_otel(otel):
    tracer, exporter = otel
    nimsync.tracing_init(sampling_rate=0.0)
    with nimsync.span("dropped") as s:
        header = nimsync.traceparent()
    assert not s.sampled and header.endswith("-00")
    ctx = PROPAGATOR.extract({"traceparent": header})
    with tracer.start_as_current_span("server", context=ctx) as o:
        assert o.get_span_context().trace_id == int(s.trace_id, 16)
        assert not o.is_recording()
    assert exporter.get_finished_spans() == ()


def test_otel_traceparent_continues_in_nimsync(otel, tmp_path):
    tracer, _ = otel
    path = tmp_path / "spans.jsonl"
    nimsync.tracing_init(sampling_rate=1.0, exporter=str(path))
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState, set_span_in_context

    with tracer.start_as_current_span("otel client") as o:
        # Give the caller's context a vendor tracestate entry as well.
        sc = o.get_span_context()
        with_state = SpanContext(
            sc.trace_id, sc.span_id, True, TraceFlags(TraceFlags.SAMPLED), TraceState([("vendor", "v1")])
        )
        carrier = {}
        PROPAGATOR.inject(carrier, context=set_span_in_context(NonRecordingSpan(with_state)))
    tp = nimsync.parse_traceparent(carrier["traceparent"])
    assert tp.trace_id == format(sc.trace_id, "032x") and tp.sampled
    with nimsync.span(
        "nimsync server", kind="server", parent=carrier["traceparent"], tracestate=carrier["tracestate"]
    ) as s:
        with nimsync.span("inner") as inner:
            pass
    assert s.trace_id == format(sc.trace_id, "032x")
    assert s.parent_span_id == format(sc.span_id, "016x")
    assert s.tracestate == "vendor=v1"
    assert inner.trace_id == s.trace_id and inner.parent_span_id == s.span_id
    nimsync.tracing_flush()
    spans = [sp for line in path.read_text().splitlines() for sp in _parse_strict(line).resource_spans[0].scope_spans[0].spans]
    server = next(sp for sp in spans if sp.name == "nimsync server")
    assert server.parent_span_id.hex() == format(sc.span_id, "016x")
    assert server.trace_state == "vendor=v1"
    assert server.kind == 2  # SPAN_KIND_SERVER


def test_ratio_sampling_matches_otel():
    """Same decision as OTel's TraceIdRatioBased for the same trace ids."""
    nimsync.tracing_init(sampling_rate=0.25)
    otel_sampler = TraceIdRatioBased(0.25)
    agree = 0
    for _ in range(400):
        # A root span picks a random trace id and the sampler's decision.
        with nimsync.span("root") as s:
            pass
        want = otel_sampler.should_sample(None, int(s.trace_id, 16), "root").decision.is_sampled()
        agree += want == s.sampled
    assert agree == 400


def _hex_ids_to_base64(obj):
    """OTLP JSON writes ids as hex; protobuf's JSON mapping wants base64 for bytes."""
    for rs in obj.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        raw = sp[key]
                        assert raw == raw.lower() and len(raw) in (16, 32), raw
                        sp[key] = base64.b64encode(bytes.fromhex(raw)).decode()
    return obj


def _parse_strict(line):
    msg = ExportTraceServiceRequest()
    json_format.Parse(json.dumps(_hex_ids_to_base64(json.loads(line))), msg, ignore_unknown_fields=False)
    return msg


def test_otlp_json_file_parses_strictly(tmp_path):
    import time

    path = tmp_path / "otlp.jsonl"
    nimsync.tracing_init(sampling_rate=1.0, exporter=str(path), service_name="py-interop", max_batch_size=2)
    before = time.time_ns()
    made = []
    with nimsync.span("outer", attributes={"s": "text \"q\"\n", "i": -(2**63), "f": 2.5, "b": True}) as outer:
        outer.add_event("started", {"n": 1})
        made.append(outer)
        for i in range(2):
            with nimsync.span("child", kind="producer") as c:
                c.set_attribute("i", i)
                made.append(c)
        with pytest.raises(ZeroDivisionError):
            with nimsync.span("fails") as bad:
                made.append(bad)
                1 / 0
        outer.set_status("ok")
    after = time.time_ns()
    nimsync.tracing_flush()
    lines = path.read_text().splitlines()
    assert len(lines) == 2  # batches of 2
    got = {}
    for line in lines:
        req = _parse_strict(line)
        (rs,) = req.resource_spans
        attrs = {kv.key: kv.value for kv in rs.resource.attributes}
        assert attrs["service.name"].string_value == "py-interop"
        (ss,) = rs.scope_spans
        assert ss.scope.name == "nimsync"
        raw = json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]
        for sp, js in zip(ss.spans, raw):
            assert sp.start_time_unix_nano == int(js["startTimeUnixNano"])
            assert sp.end_time_unix_nano == int(js["endTimeUnixNano"])
            assert before <= sp.start_time_unix_nano <= sp.end_time_unix_nano <= after
            got[sp.span_id.hex()] = sp
    assert set(got) == {s.span_id for s in made}
    for s in made:
        sp = got[s.span_id]
        assert sp.trace_id.hex() == s.trace_id
        if s.parent_span_id:
            assert sp.parent_span_id.hex() == s.parent_span_id
    o = got[outer.span_id]
    a = {kv.key: kv.value for kv in o.attributes}
    assert a["s"].string_value == "text \"q\"\n"
    assert a["i"].int_value == -(2**63)
    assert a["f"].double_value == 2.5
    assert a["b"].bool_value is True
    assert o.events[0].name == "started" and o.events[0].attributes[0].value.int_value == 1
    assert o.status.code == 1
    assert o.kind == 1
    f = got[bad.span_id]
    assert f.status.code == 2 and "division" in f.status.message
    ev = {kv.key: kv.value.string_value for kv in f.events[0].attributes}
    assert f.events[0].name == "exception" and ev["exception.type"] == "ZeroDivisionError"
    assert all(got[c.span_id].kind == 4 for c in made[1:3])


class _Receiver(BaseHTTPRequestHandler):
    bodies = []
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.bodies.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_otlp_http_receiver_gets_batches():
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        nimsync.tracing_init(sampling_rate=1.0, exporter=url, max_batch_size=5, schedule_delay=60.0)
        ids = set()
        for i in range(12):
            with nimsync.span("req", attributes={"n": i}) as s:
                ids.add(s.span_id)
        nimsync.tracing_flush()
        stats = nimsync.tracing_stats()
        assert stats["exported"] == 12 and stats["dropped"] == 0 and stats["failed"] == 0
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Receiver.bodies) == 3  # 5 + 5 + 2
    seen = set()
    for path, ctype, body in _Receiver.bodies:
        assert path == "/v1/traces" and ctype == "application/json"
        req = _parse_strict(body.decode())
        seen |= {sp.span_id.hex() for sp in req.resource_spans[0].scope_spans[0].spans}
    assert seen == ids


def test_asyncio_tasks_keep_their_own_current_span():
    nimsync.tracing_init(sampling_rate=1.0)

    async def worker(name):
        with nimsync.span(name) as s:
            await asyncio.sleep(0)
            with nimsync.span(name + ".inner") as inner:
                await asyncio.sleep(0)
            return s, inner

    async def main():
        with nimsync.span("main") as root:
            results = await asyncio.gather(worker("a"), worker("b"))
        return root, results

    root, results = asyncio.run(main())
    for s, inner in results:
        assert s.parent_span_id == root.span_id
        assert inner.parent_span_id == s.span_id
        assert inner.trace_id == root.trace_id
    assert nimsync.current_span() is None and nimsync.traceparent() is None


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="traceparent"):
        nimsync.parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")
    with pytest.raises(ValueError, match="version ff"):
        nimsync.parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    with pytest.raises(ValueError, match="sampling_rate"):
        nimsync.tracing_init(sampling_rate=1.5)
    with pytest.raises(ValueError, match="url"):
        nimsync.tracing_init(exporter="https://collector:4318/v1/traces")
    nimsync.tracing_init()
    with nimsync.span("x") as s:
        with pytest.raises(TypeError, match="expected str, int, float or bool"):
            s.set_attribute("k", object())
        with pytest.raises(ValueError, match="64 bits"):
            s.set_attribute("k", 2**64)
    with pytest.raises(ValueError, match="traceparent"):
        with nimsync.span("y", parent="not-a-header"):
            pass
    with pytest.raises(ValueError, match="kind"):
        with nimsync.span("z", kind="sideways"):
            pass
    assert nimsync.parse_tracestate("a=1, b=2") == [("a", "1"), ("b", "2")]
    with pytest.raises(ValueError, match="tracestate"):
        nimsync.parse_tracestate("a=1,a=2")
    assert nimsync.parse_baggage("user=Am%C3%A9lie;p, k = v") == {"user": "Amélie", "k": "v"}
    assert nimsync.format_baggage({"user": "Amélie"}) == "user=Am%C3%A9lie"
