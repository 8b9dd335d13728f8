use tracer_macros::handler;

#[handler("echo")]
fn echo<T: Default>(_ctx: &mut tracer_node::Ctx<'_>, req: String) -> Result<String, tracer_node::Error> {
    let _ = T::default();
    Ok(req)
}

fn main() {}
