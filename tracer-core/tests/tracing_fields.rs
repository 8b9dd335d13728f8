//! Fields become attributes; `otel.*` and `error` set the name, kind and
//! status, as the OpenTelemetry conventions say.

mod support;

use support::{named, Setup};
use tracer_core::{Sampler, SpanKind, Status, Value};

#[test]
fn fields_are_attributes_and_otel_fields_set_name_kind_and_status() {
    let s = Setup::new(Sampler::AlwaysOn);
    s.run(|| {
        let span = tracing::info_span!(
            "handler",
            otel.name = "GET /users/:id",
            otel.kind = "server",
            http.request.method = "GET",
            user.id = 7_u64,
            cached = false,
            otel.status_code = tracing::field::Empty,
            otel.status_message = tracing::field::Empty,
            late = tracing::field::Empty,
        );
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_message", "user not found");
        span.record("late", 1.5);
        let client = tracing::info_span!("call", otel.kind = "client", error = "timed out");
        drop((client, span));
    });
    let spans = s.take();
    let h = named(&spans, "GET /users/:id");
    assert_eq!(h.kind, SpanKind::Server);
    assert_eq!(
        h.attribute("http.request.method"),
        Some(&Value::from("GET"))
    );
    assert_eq!(h.attribute("user.id"), Some(&Value::I64(7)));
    assert_eq!(h.attribute("cached"), Some(&Value::Bool(false)));
    assert_eq!(h.attribute("late"), Some(&Value::F64(1.5)));
    assert_eq!(h.status, Status::Error("user not found".into()));
    let c = named(&spans, "call");
    assert_eq!(c.kind, SpanKind::Client);
    assert_eq!(c.status, Status::Error("timed out".into()));
    assert_eq!(c.attribute("error"), Some(&Value::from("timed out")));
}
