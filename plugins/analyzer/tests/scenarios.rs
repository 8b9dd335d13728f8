//! Realistic snippets per language, analyzed with detection.

use tracer_analyzer::{analyze, Language};

#[test]
fn realistic_snippets() {
    let samples: &[(&str, Language, usize, &str)] = &[
        (
            r#"import { trace } from '@opentelemetry/api';
const tracer = trace.getTracer('svc');
export async function handle(req: Request): Promise<Response> {
  return tracer.startActiveSpan('handle', async (span) => {
    try {
      const child = tracer.startSpan('child');
      const res = await fetch(`/api/${req.id}?q=${encodeURIComponent("a/b")}`);
      return res;
    } finally {
      span.end();
    }
  });
}"#,
            Language::TypeScript,
            2,
            "child",
        ),
        (
            r#"from opentelemetry import trace

tracer = trace.get_tracer(__name__)

def handler(request):
    span = tracer.start_span("handler")
    with tracer.start_as_current_span("inner") as inner:
        inner.set_attribute("x", f"{request!r}")
    return "ok"

class Worker:
    def run(self):
        self.span = tracer.start_span("run")
        self.span.end()
"#,
            Language::Python,
            3,
            "handler",
        ),
        (
            r#"use opentelemetry::trace::Tracer;

#[tracing::instrument]
#[traced]
pub fn work<'a>(input: &'a str) -> &'a str {
    let tracer = global::tracer("svc");
    let span = tracer.start_span("work");
    let c = '"';
    let label = 'outer: loop { break 'outer 1; };
    std::mem::forget(span);
    input
}"#,
            Language::Rust,
            2,
            "work",
        ),
        (
            r#"package main

import (
	"context"
	"go.opentelemetry.io/otel"
)

func handle(ctx context.Context) error {
	ctx, span := otel.Tracer("svc").Start(ctx, "handle")
	defer span.End()
	_, child := tracer.Start(ctx, "child")
	q := `SELECT * FROM t WHERE a = 'x'`
	_ = q
	return nil
}"#,
            Language::Go,
            2,
            "child",
        ),
        (
            r#"import io.opentelemetry.api.trace.Span;

public class Handler {
  @Override
  public void handle() {
    Span span = tracer.spanBuilder("handle").setSpanKind(SpanKind.SERVER).startSpan();
    try (Scope scope = span.makeCurrent()) {
      String q = """
        SELECT "x" FROM t
        """;
    }
    Span ok = tracer.spanBuilder("ok").startSpan();
    ok.end();
  }
}"#,
            Language::Java,
            2,
            "handle",
        ),
    ];
    for &(code, lang, spans, never) in samples {
        let a = analyze(code, None).unwrap();
        assert_eq!(a.language, lang, "{code}");
        assert_eq!(a.spans_created, spans, "{code}");
        assert_eq!(
            a.warnings,
            [format!("span '{never}' is never ended")],
            "{code}"
        );
    }
}
