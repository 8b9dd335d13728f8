use tracer_macros::traced;

#[traced(name = "ok", bogus)]
fn work() {}

fn main() {}
