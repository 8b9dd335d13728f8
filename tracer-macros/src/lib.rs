//! Attributes for `tracer`: `#[traced]` wraps a function in a span, and
//! `#[handler("type")]` turns a function into a message handler of the
//! `tracer-node` runtime.
//!
//! ```
//! use std::sync::Arc;
//! use tracer_core::{global, InMemoryExporter, Sampler, Tracer};
//! use tracer_macros::traced;
//!
//! #[traced(kind = server, fields(http.route = "/users/:id"), err)]
//! fn get_user(id: u32) -> Result<String, std::num::ParseIntError> {
//!     let parsed: u32 = "7".parse()?;
//!     Ok(format!("user {}", id + parsed))
//! }
//!
//! let exporter = Arc::new(InMemoryExporter::new());
//! let _ = global::set_tracer(Tracer::new(Sampler::AlwaysOn, exporter.clone()));
//! assert_eq!(get_user(3).unwrap(), "user 10");
//! let span = exporter.take().pop().unwrap();
//! assert_eq!(span.name, "get_user");
//! assert_eq!(span.attribute("id").unwrap().as_str(), Some("3"));
//! assert_eq!(span.attribute("http.route").unwrap().as_str(), Some("/users/:id"));
//! ```

#![warn(missing_docs)]

mod attr;
mod expand;

use proc_macro::TokenStream;

/// Wraps a `fn` or `async fn` in a span, child of the current span, current
/// while the body runs and ended when it returns (or the future completes or
/// is dropped). The span uses the process-wide tracer
/// (`tracer_core::global::tracer()`).
///
/// Options, comma-separated:
/// - `name = expr`: the span name (default: the function's name); any
///   expression convertible to `Cow<'static, str>`.
/// - `kind = server | client | producer | consumer | internal` (default `internal`).
/// - `skip(a, b)`, `skip_all`: arguments not recorded. Others are recorded as
///   attributes with their `Debug` text; `self` never is.
/// - `fields(key = expr, a.b = %display, c = ?debug)`: extra attributes.
/// - `err`: an `Err` return is recorded as an `exception` event and sets
///   status ERROR.
/// - `ret`: the return value (the `Ok` value with `err`) is recorded as the
///   attribute `return`.
/// - `parent = expr`: an explicit parent (`SpanContext` or
///   `Option<SpanContext>`; `None` makes a root).
/// - `root`: always start a new trace.
#[proc_macro_attribute]
pub fn traced(args: TokenStream, item: TokenStream) -> TokenStream {
    let result = attr::parse::<attr::TracedArgs>(args.into()).and_then(|args| {
        let item: syn::ItemFn = syn::parse(item)?;
        expand::traced(args, item)
    });
    result.unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Registers a function `fn(&mut Ctx<'_>, Request) -> Result<Reply, Error>`
/// as the node's handler of messages of one `type`. The request is
/// deserialized from the message body (a missing or mistyped field is error
/// 12 naming the field) and the reply is serialized back with `in_reply_to`.
///
/// Options after the type: `always_reply` (reply even when the request has
/// no `msg_id`), `own_span` (the handler opens its own SERVER span from
/// `ctx.incoming()` instead of the sidecar's).
///
/// The handler is submitted to the runtime's registry with
/// `inventory::submit!`: adding one edits no central list.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let result = attr::parse::<attr::HandlerArgs>(args.into()).and_then(|args| {
        let item: syn::ItemFn = syn::parse(item)?;
        expand::handler(args, item)
    });
    result.unwrap_or_else(syn::Error::into_compile_error).into()
}
