use tracer_macros::traced;

#[traced]
struct Work {
    id: u32,
}

fn main() {}
