use tracer_macros::traced;

#[traced(skip(id, nonexistent))]
fn work(id: u32) {
    let _ = id;
}

fn main() {}
