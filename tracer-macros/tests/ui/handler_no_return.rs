use tracer_macros::handler;

#[handler("echo")]
fn echo(_ctx: &mut tracer_node::Ctx<'_>, req: String) {
    let _ = req;
}

fn main() {}
