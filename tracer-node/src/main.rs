//! `tracer-node`: serves the Maelstrom protocol on stdin/stdout until stdin
//! closes, then exits 0. Diagnostics go to stderr.

use std::io;
use std::process::ExitCode;
use tracer_node::{Config, Node, Registry};

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tracer-node: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // Naming the plugins crate links its handlers into the binary.
    let served = plugins::served_types();
    let registry = match Registry::collect() {
        Ok(r) => r,
        Err(dup) => {
            eprintln!("tracer-node: cannot start: {dup}");
            return ExitCode::from(2);
        }
    };
    debug_assert_eq!(served.len(), registry.types().len());
    let mut node = Node::new(registry, config);
    node.install_globals();
    match node.run(io::stdin().lock(), io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracer-node: i/o error: {e}");
            ExitCode::FAILURE
        }
    }
}
