use tracer_macros::handler;

#[handler("echo")]
fn echo(_ctx: &mut tracer_node::Ctx<'_>, req: &str) -> Result<String, tracer_node::Error> {
    Ok(req.to_owned())
}

fn main() {}
