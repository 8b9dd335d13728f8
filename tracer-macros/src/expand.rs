//! Generates the code of `#[traced]` and `#[handler]`.

use crate::attr::{FieldValue, HandlerArgs, Kind, TracedArgs};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'a> syn::visit::Visit<'a> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'a syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut f = Finder(false);
    syn::visit::visit_type(&mut f, ty);
    f.0
}

pub(crate) fn traced(args: TracedArgs, item: ItemFn) -> syn::Result<TokenStream> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new_spanned(
            c,
            "`#[traced]` cannot be used on a `const fn`: starting a span is not const",
        ));
    }
    let ret_ty = match &sig.output {
        ReturnType::Type(_, ty) => Some(ty.as_ref()),
        ReturnType::Default => None,
    };
    if let (Some(err), None) = (args.err, ret_ty) {
        return Err(syn::Error::new(
            err,
            "`err` needs a function that returns a `Result`",
        ));
    }

    // Arguments: every simple `name: Type` is recorded (Debug) unless skipped.
    let mut arg_names = Vec::new();
    for input in &sig.inputs {
        if let FnArg::Typed(pt) = input {
            if let Pat::Ident(pi) = pt.pat.as_ref() {
                arg_names.push(pi.ident.clone());
            }
        }
    }
    for s in &args.skip {
        if !arg_names.iter().any(|a| a == s) && s != "self" {
            return Err(syn::Error::new(
                s.span(),
                format!("`skip({s})`: the function has no argument `{s}`"),
            ));
        }
    }
    let recorded: Vec<_> = if args.skip_all {
        Vec::new()
    } else {
        arg_names
            .iter()
            .filter(|a| !args.skip.contains(a))
            .map(|a| {
                let key = a.to_string();
                quote_spanned! {a.span()=>
                    __tracer_span.set_attribute(#key, ::tracer_core::__private::format!("{:?}", #a));
                }
            })
            .collect()
    };
    let fields: Vec<_> = args
        .fields
        .iter()
        .map(|f| {
            let key = &f.key;
            match &f.value {
                FieldValue::Into(e) => quote_spanned! {e.span()=> __tracer_span.set_attribute(#key, #e); },
                FieldValue::Display(e) => quote_spanned! {e.span()=>
                    __tracer_span.set_attribute(#key, ::tracer_core::__private::format!("{}", #e));
                },
                FieldValue::Debug(e) => quote_spanned! {e.span()=>
                    __tracer_span.set_attribute(#key, ::tracer_core::__private::format!("{:?}", #e));
                },
            }
        })
        .collect();

    let name = match &args.name {
        Some(e) => quote!(#e),
        None => {
            let n = sig.ident.to_string();
            quote!(#n)
        }
    };
    let kind = args.kind.as_ref().unwrap_or(&Kind::Internal).variant();
    let parent = match (&args.parent, args.root) {
        // Cloned, so that `parent = ctx` does not move an argument the span
        // then records.
        (Some(p), _) => {
            quote!(.parent_or_root(::core::convert::Into::<::core::option::Option<::tracer_core::SpanContext>>::into(::core::clone::Clone::clone(&(#p)))))
        }
        (None, Some(_)) => quote!(.root()),
        (None, None) => quote!(),
    };
    let start = quote! {
        let mut __tracer_span = ::tracer_core::global::tracer()
            .span_builder(#name)
            .kind(::tracer_core::SpanKind::#kind)
            #parent
            .start();
        if __tracer_span.is_recording() {
            #(#recorded)*
            #(#fields)*
        }
    };

    let annot = match ret_ty {
        Some(t) if !contains_impl_trait(t) => quote!(: #t),
        _ => quote!(),
    };
    let record_err = args.err.map(|_| {
        quote! {
            if let ::core::result::Result::Err(__e) = &__tracer_ret {
                __tracer_span.record_error(__e);
            }
        }
    });
    let record_ret = args.ret.then(|| {
        if args.err.is_some() {
            quote! {
                if let ::core::result::Result::Ok(__v) = &__tracer_ret {
                    __tracer_span.set_attribute("return", ::tracer_core::__private::format!("{:?}", __v));
                }
            }
        } else {
            quote! {
                __tracer_span.set_attribute("return", ::tracer_core::__private::format!("{:?}", &__tracer_ret));
            }
        }
    });
    let inspects = record_err.is_some() || record_ret.is_some();

    let body = if sig.asyncness.is_some() {
        quote! {
            #start
            let __tracer_ctx = ::core::clone::Clone::clone(__tracer_span.context());
            let __tracer_ret #annot = ::tracer_core::WithContext::new(async move #block, __tracer_ctx).await;
            #record_err
            #record_ret
            __tracer_span.end();
            __tracer_ret
        }
    } else if inspects {
        let guard = format_ident!("__tracer_guard");
        quote! {
            #start
            let #guard = __tracer_span.enter();
            // Called through an `FnOnce` bound so the closure owns its
            // captures: a `&mut self` body may return a borrow of `self`.
            let __tracer_ret #annot = {
                #[inline(always)]
                fn __tracer_call_once<R, F: ::core::ops::FnOnce() -> R>(f: F) -> R {
                    f()
                }
                __tracer_call_once(move || #block)
            };
            ::core::mem::drop(#guard);
            #record_err
            #record_ret
            __tracer_span.end();
            __tracer_ret
        }
    } else {
        quote! {
            #start
            let __tracer_guard = __tracer_span.entered();
            #block
        }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}

pub(crate) fn handler(args: HandlerArgs, item: ItemFn) -> syn::Result<TokenStream> {
    let sig = &item.sig;
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            a,
            "a handler must be a plain `fn`: the node runs handlers synchronously",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a handler cannot be generic: its request type must be known to deserialize it",
        ));
    }
    if sig.inputs.len() != 2 {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "a handler takes exactly two arguments: `(ctx: &mut Ctx<'_>, request: Request)`",
        ));
    }
    let mut inputs = sig.inputs.iter();
    let first = inputs.next().expect("two inputs");
    match first {
        FnArg::Typed(pt) if matches!(pt.ty.as_ref(), Type::Reference(r) if r.mutability.is_some()) =>
            {}
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "the first argument of a handler must be `&mut Ctx<'_>`",
            ))
        }
    }
    let second = inputs.next().expect("two inputs");
    let req_ty =
        match second {
            FnArg::Typed(pt) => match pt.ty.as_ref() {
                Type::Reference(r) => return Err(syn::Error::new_spanned(
                    r,
                    "the request must be taken by value: it is deserialized from the message body",
                )),
                ty => ty.clone(),
            },
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "a handler cannot take `self`",
                ));
            }
        };
    if let ReturnType::Default = sig.output {
        return Err(syn::Error::new_spanned(
            &sig.ident,
            "a handler must return `Result<Reply, tracer_node::Error>`",
        ));
    }
    let fn_name = &sig.ident;
    let msg_type = &args.msg_type;
    let always_reply = args.always_reply;
    let own_span = args.own_span;
    let call = format_ident!("__tracer_handler_{}", fn_name);
    Ok(quote! {
        #item

        #[doc(hidden)]
        #[allow(non_snake_case)]
        fn #call(
            ctx: &mut ::tracer_node::Ctx<'_>,
            body: &::tracer_node::__private::Body<'_>,
        ) -> ::core::result::Result<(), ::tracer_node::Error> {
            let request: #req_ty = ::tracer_node::__private::decode(body)?;
            let reply = #fn_name(ctx, request)?;
            ctx.reply(&reply);
            ::core::result::Result::Ok(())
        }

        ::tracer_node::__private::inventory::submit! {
            ::tracer_node::Handler {
                msg_type: #msg_type,
                name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#fn_name)),
                call: #call,
                always_reply: #always_reply,
                own_span: #own_span,
            }
        }
    })
}
