use tracer_macros::traced;

#[traced]
pub const fn work() -> u32 {
    1
}

fn main() {}
