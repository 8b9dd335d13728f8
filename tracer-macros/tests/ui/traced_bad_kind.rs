use tracer_macros::traced;

#[traced(kind = foo)]
fn work() {}

fn main() {}
