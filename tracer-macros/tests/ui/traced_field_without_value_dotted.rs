use tracer_macros::traced;

#[traced(fields(a = 1, http.route, b = 2))]
fn work() {}

fn main() {}
