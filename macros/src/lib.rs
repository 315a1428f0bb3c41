//! `#[runtime::main]` and `#[runtime::test]`. Use them through the `runtime` crate.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Error, ItemFn, LitInt, LitStr};

/// Runs an `async fn main` on a runtime.
///
/// `#[runtime::main(backend = "uring")]` asks for a backend (`"uring"`, `"epoll"` or `"auto"`,
/// the default); `RUNTIME_BACKEND` overrides it at run time. A backend that cannot start ends
/// the program with an error that names the cause. `reactors = N`, `pool_threads = N` and
/// `wake = "eventfd-if-parked"` (or another strategy) shape the runtime.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    match expand_main(args.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        Err(e) => {
            // Keep a `main` around so that the error above is the only one reported.
            let mut out = e.into_compile_error();
            if let Ok(mut func) = syn::parse2::<ItemFn>(item) {
                func.sig.asyncness = None;
                let sig = &func.sig;
                out.extend(quote!(#sig { ::core::unreachable!() }));
            }
            out.into()
        }
    }
}

/// Runs an `async fn` test once on every backend compiled into `runtime`.
///
/// The test becomes a module of the same name with one test per backend (`name::uring`,
/// `name::epoll`), each pinned to its backend whatever `RUNTIME_BACKEND` says. io_uring, where
/// this kernel refuses it, prints why and passes without running. A watchdog aborts a test
/// that runs longer than `timeout_secs` (default 120). The runtime has one reactor and one pool
/// thread unless `reactors = N`, `pool_threads = N`, `wake = "..."`, `ring_entries = N` or
/// `multishot_receive = false` say otherwise.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_test(args.into(), item.into())
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// Checks the shape every attributed function must have: `async`, no parameters, no generics.
fn parse_async_fn(item: proc_macro2::TokenStream, attr: &str) -> syn::Result<ItemFn> {
    let func: ItemFn = syn::parse2(item)?;
    if func.sig.asyncness.is_none() {
        return Err(Error::new(
            func.sig.fn_token.span(),
            format!("#[runtime::{attr}] needs an `async fn`"),
        ));
    }
    if !func.sig.inputs.is_empty() {
        return Err(Error::new(
            func.sig.inputs.span(),
            format!("#[runtime::{attr}] functions take no arguments"),
        ));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(Error::new(
            func.sig.generics.span(),
            format!("#[runtime::{attr}] functions cannot be generic"),
        ));
    }
    Ok(func)
}

fn backend_variant(lit: &LitStr) -> syn::Result<proc_macro2::TokenStream> {
    match lit.value().as_str() {
        "auto" => Ok(quote!(::runtime::Backend::Auto)),
        "uring" => Ok(quote!(::runtime::Backend::Uring)),
        "epoll" => Ok(quote!(::runtime::Backend::Epoll)),
        other => Err(Error::new(
            lit.span(),
            format!("unknown backend {other:?}: expected \"uring\", \"epoll\" or \"auto\""),
        )),
    }
}

/// Runtime-shape arguments both attributes take: `reactors = N`, `pool_threads = N`,
/// `wake = "..."`, `multishot_receive = false`, `ring_entries = N`. Returns the builder calls
/// they stand for.
fn shape_arg(
    meta: &syn::meta::ParseNestedMeta<'_>,
    calls: &mut Vec<proc_macro2::TokenStream>,
) -> syn::Result<bool> {
    if meta.path.is_ident("ring_entries") {
        let n: LitInt = meta.value()?.parse()?;
        let n: u32 = n.base10_parse()?;
        calls.push(quote!(.ring_entries(#n)));
        return Ok(true);
    }
    if meta.path.is_ident("reactors") || meta.path.is_ident("pool_threads") {
        let n: LitInt = meta.value()?.parse()?;
        let n: usize = n.base10_parse()?;
        let method = meta.path.get_ident().expect("checked above").clone();
        calls.push(quote!(.#method(#n)));
        return Ok(true);
    }
    if meta.path.is_ident("multishot_receive") {
        let on: syn::LitBool = meta.value()?.parse()?;
        calls.push(quote!(.multishot_receive(#on)));
        return Ok(true);
    }
    if meta.path.is_ident("wake") {
        let lit: LitStr = meta.value()?.parse()?;
        let value = lit.value();
        let known = [
            "eventfd",
            "eventfd-if-parked",
            "timeout:",
            "sqpoll",
            "msg-ring",
            "direct-first",
        ];
        if !known.iter().any(|k| {
            value == *k
                || (k.ends_with(':') && value.starts_with(k))
                || value.starts_with("sqpoll:")
        }) {
            return Err(Error::new(
                lit.span(),
                format!("unknown wake strategy {value:?}: expected eventfd, eventfd-if-parked, timeout:<dur>, sqpoll, msg-ring or direct-first"),
            ));
        }
        calls.push(quote! {
            .wake(::runtime::WakeStrategy::parse(#lit).unwrap_or_else(|e| panic!("{e}")))
        });
        return Ok(true);
    }
    Ok(false)
}

fn expand_main(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut backend = quote!(::runtime::Backend::Auto);
    let mut calls = Vec::new();
    syn::meta::parser(|meta| {
        if meta.path.is_ident("backend") {
            backend = backend_variant(&meta.value()?.parse()?)?;
            Ok(())
        } else if shape_arg(&meta, &mut calls)? {
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[runtime::main] argument: expected backend, reactors, pool_threads, wake, multishot_receive or ring_entries",
            ))
        }
    })
    .parse2(args)?;
    let func = parse_async_fn(item, "main")?;
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let mut sig = sig;
    sig.asyncness = None;
    let body = quote_spanned!(block.span()=> async move #block);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            ::runtime::private::run_main(::runtime::Builder::new().backend(#backend) #(#calls)*, #body)
        }
    })
}

fn expand_test(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut timeout = quote!(::runtime::private::DEFAULT_TEST_TIMEOUT);
    let mut calls = Vec::new();
    syn::meta::parser(|meta| {
        if meta.path.is_ident("timeout_secs") {
            let secs: LitInt = meta.value()?.parse()?;
            let secs: u64 = secs.base10_parse()?;
            timeout = quote!(::std::time::Duration::from_secs(#secs));
            Ok(())
        } else if shape_arg(&meta, &mut calls)? {
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[runtime::test] argument: expected timeout_secs, reactors, pool_threads, wake, multishot_receive or ring_entries",
            ))
        }
    })
    .parse2(args)?;
    let func = parse_async_fn(item, "test")?;
    let name = &func.sig.ident;
    let output = &func.sig.output;
    let attrs = &func.attrs;
    let vis = &func.vis;
    let body_fn = format_ident!("__{}_body", name, span = Span::call_site());
    let mut body = func.clone();
    body.sig.ident = body_fn.clone();
    body.attrs.clear();
    body.vis = syn::Visibility::Inherited;
    let per_backend = [
        ("uring", quote!(Uring), quote!(__if_uring)),
        ("epoll", quote!(Epoll), quote!(__if_epoll)),
    ]
    .into_iter()
    .map(|(test_name, variant, gate)| {
        let test_name = format_ident!("{}", test_name);
        quote! {
            ::runtime::#gate! {
                #[::core::prelude::v1::test]
                #(#attrs)*
                fn #test_name() #output {
                    ::runtime::private::run_test(
                        ::runtime::Backend::#variant,
                        concat!(module_path!(), "::", stringify!(#name)),
                        #timeout,
                        ::runtime::private::test_builder() #(#calls)*,
                        super::#body_fn(),
                    )
                }
            }
        }
    });
    Ok(quote! {
        #[allow(clippy::needless_return)]
        #body
        #vis mod #name {
            #(#per_backend)*
        }
    })
}
