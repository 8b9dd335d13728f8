use tracer_macros::traced;

#[traced(name = "first", kind = client, name = "second")]
fn work() {}

fn main() {}
