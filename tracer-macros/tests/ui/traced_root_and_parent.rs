use tracer_macros::traced;

#[traced(parent = None::<tracer_core::SpanContext>, root)]
fn work() {}

fn main() {}
