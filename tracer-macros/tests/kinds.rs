//! `kind = ...` sets the span kind; the default is INTERNAL.

mod support;

use support::run;
use tracer_core::SpanKind;
use tracer_macros::traced;

#[traced(kind = server)]
fn serve() {}

#[traced(kind = client)]
fn call() {}

#[traced(kind = producer)]
fn send() {}

#[traced(kind = consumer)]
fn receive() {}

#[traced(kind = internal)]
fn explicit_internal() {}

#[traced]
fn default_kind() {}

#[traced(kind = client, err)]
async fn async_call() -> Result<(), String> {
    Ok(())
}

#[traced(name = "with-kind-last", kind = producer)]
fn kind_after_name() {}

#[test]
fn each_kind_is_recorded() {
    let ((), run) = run("kinds-each", || {
        serve();
        call();
        send();
        receive();
        explicit_internal();
    });
    let kinds: Vec<_> = run
        .spans
        .iter()
        .map(|s| (s.name.as_ref(), s.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("serve", SpanKind::Server),
            ("call", SpanKind::Client),
            ("send", SpanKind::Producer),
            ("receive", SpanKind::Consumer),
            ("explicit_internal", SpanKind::Internal),
        ]
    );
}

#[test]
fn default_kind_is_internal() {
    let ((), run) = run("kinds-default", default_kind);
    assert_eq!(run.one("default_kind").kind, SpanKind::Internal);
    assert_eq!(run.one("default_kind").kind.as_str(), "INTERNAL");
}

#[test]
fn kind_combines_with_other_options() {
    let ((), run) = run("kinds-combined", || {
        support::block_on(async_call()).unwrap();
        kind_after_name();
    });
    assert_eq!(run.one("async_call").kind, SpanKind::Client);
    assert_eq!(run.one("with-kind-last").kind, SpanKind::Producer);
}
