use tracer_macros::handler;

#[handler("echo", always_reply, reply_twice)]
fn echo(_ctx: &mut tracer_node::Ctx<'_>, req: String) -> Result<String, tracer_node::Error> {
    Ok(req)
}

fn main() {}
