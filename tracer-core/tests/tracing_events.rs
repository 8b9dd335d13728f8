//! Events inside a span become span events, and log records with the
//! span's trace and span ids.

mod support;

use support::{named, Setup};
use tracer_core::{Sampler, Value};

#[test]
fn events_become_span_events_and_correlated_log_records() {
    let s = Setup::new(Sampler::AlwaysOn);
    s.run(|| {
        let _span = tracing::info_span!("checkout").entered();
        tracing::warn!(attempt = 2, "payment retried");
        let inner = s.tracer.start("inner (tracer)").entered();
        tracing::info!("inside tracer's span");
        drop(inner);
    });
    tracing::dispatcher::with_default(&s.dispatch(), || tracing::info!("outside any span"));
    let spans = s.take();
    let checkout = named(&spans, "checkout");
    assert_eq!(checkout.events.len(), 1, "{checkout:#?}");
    let e = &checkout.events[0];
    assert_eq!(e.name, "payment retried");
    assert!(e
        .attributes
        .iter()
        .any(|kv| kv.key == "attempt" && kv.value == Value::I64(2)));
    let logs = s.logs.lock().unwrap();
    assert_eq!(logs.len(), 3);
    assert_eq!(&*logs[0].body, "payment retried");
    assert_eq!(logs[0].level.as_deref(), Some("WARN"));
    assert_eq!(logs[0].trace_id, Some(checkout.context.trace_id()));
    assert_eq!(logs[0].span_id, Some(checkout.context.span_id()));
    assert_eq!(&*logs[0].service, "svc");
    // An event in tracer's own span (inside a tracing span) is correlated
    // with the innermost span, tracer's.
    let inner = named(&spans, "inner (tracer)");
    assert_eq!(logs[1].span_id, Some(inner.context.span_id()));
    assert_eq!(logs[2].trace_id, None, "no span: no trace");
}
