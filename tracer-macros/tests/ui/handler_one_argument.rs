use tracer_macros::handler;

#[handler("echo")]
fn echo(req: String) -> Result<String, tracer_node::Error> {
    Ok(req)
}

fn main() {}
