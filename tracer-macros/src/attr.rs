//! Parses the attributes into plain structs; every error points at its tokens.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

/// The span kind named in `kind = ...`.
pub(crate) enum Kind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl Kind {
    pub(crate) fn variant(&self) -> Ident {
        let name = match self {
            Kind::Internal => "Internal",
            Kind::Server => "Server",
            Kind::Client => "Client",
            Kind::Producer => "Producer",
            Kind::Consumer => "Consumer",
        };
        Ident::new(name, Span::call_site())
    }
}

/// How a field value is turned into an attribute value.
pub(crate) enum FieldValue {
    /// `key = expr`: `expr` converts with `Into<Value>`.
    Into(Expr),
    /// `key = %expr`: formatted with `Display`.
    Display(Expr),
    /// `key = ?expr`: formatted with `Debug`.
    Debug(Expr),
}

pub(crate) struct Field {
    pub(crate) key: String,
    pub(crate) value: FieldValue,
}

/// `#[traced(...)]`.
#[derive(Default)]
pub(crate) struct TracedArgs {
    pub(crate) name: Option<Expr>,
    pub(crate) kind: Option<Kind>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) skip_all: bool,
    pub(crate) fields: Vec<Field>,
    pub(crate) err: Option<Span>,
    pub(crate) ret: bool,
    pub(crate) parent: Option<Expr>,
    pub(crate) root: Option<Span>,
}

fn dup(ident: &Ident) -> syn::Error {
    syn::Error::new(ident.span(), format!("`{ident}` is given more than once"))
}

impl Parse for TracedArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = TracedArgs::default();
        while !input.is_empty() {
            let ident: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            match ident.to_string().as_str() {
                "name" => {
                    if args.name.is_some() {
                        return Err(dup(&ident));
                    }
                    input.parse::<Token![=]>()?;
                    args.name = Some(input.parse()?);
                }
                "kind" => {
                    if args.kind.is_some() {
                        return Err(dup(&ident));
                    }
                    input.parse::<Token![=]>()?;
                    let k: Ident = input.parse()?;
                    args.kind = Some(match k.to_string().as_str() {
                        "internal" => Kind::Internal,
                        "server" => Kind::Server,
                        "client" => Kind::Client,
                        "producer" => Kind::Producer,
                        "consumer" => Kind::Consumer,
                        _ => {
                            return Err(syn::Error::new(
                                k.span(),
                                "unknown span kind: expected one of `server`, `client`, `producer`, `consumer`, `internal`",
                            ))
                        }
                    });
                }
                "skip" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let names: Punctuated<Ident, Token![,]> =
                        content.parse_terminated(syn::ext::IdentExt::parse_any, Token![,])?;
                    args.skip.extend(names);
                }
                "skip_all" => args.skip_all = true,
                "fields" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let fields: Punctuated<Field, Token![,]> =
                        content.parse_terminated(Field::parse, Token![,])?;
                    args.fields.extend(fields);
                }
                "err" => {
                    if args.err.is_some() {
                        return Err(dup(&ident));
                    }
                    args.err = Some(ident.span());
                }
                "ret" => args.ret = true,
                "parent" => {
                    if args.parent.is_some() {
                        return Err(dup(&ident));
                    }
                    input.parse::<Token![=]>()?;
                    args.parent = Some(input.parse()?);
                }
                "root" => args.root = Some(ident.span()),
                other => {
                    return Err(syn::Error::new(
                        ident.span(),
                        format!(
                            "unknown `traced` option `{other}`: expected `name`, `kind`, `skip`, `skip_all`, `fields`, `err`, `ret`, `parent` or `root`"
                        ),
                    ))
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        if let (Some(root), Some(_)) = (args.root, &args.parent) {
            return Err(syn::Error::new(
                root,
                "`root` and `parent` cannot be used together",
            ));
        }
        Ok(args)
    }
}

impl Parse for Field {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // The key's tokens, for an error that points at the key itself.
        let mut key_tokens = TokenStream::new();
        let key = if input.peek(LitStr) {
            let lit = input.parse::<LitStr>()?;
            key_tokens.extend(quote::quote!(#lit));
            lit.value()
        } else {
            let first: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            let mut parts = vec![first.to_string()];
            key_tokens.extend(quote::quote!(#first));
            while input.peek(Token![.]) {
                input.parse::<Token![.]>()?;
                let next: Ident = input.call(syn::ext::IdentExt::parse_any)?;
                parts.push(next.to_string());
                key_tokens.extend(quote::quote!(#next));
            }
            parts.join(".")
        };
        if !input.peek(Token![=]) {
            return Err(syn::Error::new_spanned(
                key_tokens,
                format!("field `{key}` needs a value: `{key} = expr`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value = if input.peek(Token![%]) {
            input.parse::<Token![%]>()?;
            FieldValue::Display(input.parse()?)
        } else if input.peek(Token![?]) {
            input.parse::<Token![?]>()?;
            FieldValue::Debug(input.parse()?)
        } else {
            FieldValue::Into(input.parse()?)
        };
        Ok(Field { key, value })
    }
}

/// `#[handler("type", always_reply, own_span)]`.
pub(crate) struct HandlerArgs {
    pub(crate) msg_type: LitStr,
    pub(crate) always_reply: bool,
    pub(crate) own_span: bool,
}

impl Parse for HandlerArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if !input.peek(LitStr) {
            return Err(input.error(
                "expected the message type as a string literal, e.g. #[handler(\"echo\")]",
            ));
        }
        let msg_type: LitStr = input.parse()?;
        if msg_type.value().is_empty() {
            return Err(syn::Error::new(
                msg_type.span(),
                "the message type cannot be empty",
            ));
        }
        let mut args = HandlerArgs {
            msg_type,
            always_reply: false,
            own_span: false,
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let flag: Ident = input.parse()?;
            match flag.to_string().as_str() {
                "always_reply" => args.always_reply = true,
                "own_span" => args.own_span = true,
                other => {
                    return Err(syn::Error::new(
                        flag.span(),
                        format!(
                        "unknown `handler` option `{other}`: expected `always_reply` or `own_span`"
                    ),
                    ))
                }
            }
        }
        Ok(args)
    }
}

pub(crate) fn parse<T: Parse>(tokens: TokenStream) -> syn::Result<T> {
    syn::parse2(tokens)
}
