use tracer_macros::traced;

#[traced(kind = server, err)]
fn work() {}

fn main() {}
