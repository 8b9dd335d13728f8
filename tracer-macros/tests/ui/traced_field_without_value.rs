use tracer_macros::traced;

#[traced(fields(x))]
fn work() {}

fn main() {}
