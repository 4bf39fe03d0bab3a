//! Attribute macros for the GraphQL shell of the `velferd` crate.

use proc_macro::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ItemImpl, Pat, Type, parse_macro_input, parse_quote};

/// Writes the Relay arguments of every connection field in an `#[Object]` impl once.
///
/// Put it above `#[Object]`. In each method, a parameter of type `PageArgs` (say
/// `page: PageArgs`) becomes, in its place, the four optional GraphQL arguments
/// `after: String`, `before: String`, `first: Int` and `last: Int`; in the body, `page` holds
/// them as the client gave them (`crate::graphql::connection::PageArgs`, unchecked). The field
/// also gets the complexity of a connection: the page size times the cost of one item
/// (`crate::graphql::connection::page_complexity`), so a query nesting large pages is refused
/// before it runs.
///
/// async-graphql cannot flatten a struct into arguments, and `#[Object]` expands no macro
/// inside its impl, hence an attribute on the whole impl. The schema is exactly what the four
/// arguments written out by hand give.
///
/// ```ignore
/// #[connections]
/// #[Object]
/// impl Gathering {
///     /// Every organisation that came.
///     async fn attendees(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<GatheringAttendee>> {
///         load_page(ctx, AttendanceAt(self.0.id), page, |_| true, GatheringAttendee, |a| a.0.id).await
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn connections(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let message = "`#[connections]` takes no arguments";
        return syn::Error::new(proc_macro2::TokenStream::from(attr).span(), message).to_compile_error().into();
    }
    let mut block = parse_macro_input!(item as ItemImpl);
    for item in &mut block.items {
        if let ImplItem::Fn(method) = item
            && let Err(e) = expand_page_args(method)
        {
            return e.to_compile_error().into();
        }
    }
    quote!(#block).into()
}

/// Replaces a method's `PageArgs` parameter by the four Relay arguments, if it has one.
fn expand_page_args(method: &mut syn::ImplItemFn) -> syn::Result<()> {
    let inputs = std::mem::take(&mut method.sig.inputs);
    let mut page = None;
    for input in inputs {
        match page_args(&input) {
            Some(_) if page.is_some() => {
                return Err(syn::Error::new(input.span(), "a connection field takes one `PageArgs`"));
            }
            Some(found) => {
                page = Some(found);
                method.sig.inputs.push(parse_quote!(after: Option<String>));
                method.sig.inputs.push(parse_quote!(before: Option<String>));
                method.sig.inputs.push(parse_quote!(first: Option<i32>));
                method.sig.inputs.push(parse_quote!(last: Option<i32>));
            }
            None => method.sig.inputs.push(input),
        }
    }
    let Some((name, ty)) = page else { return Ok(()) };
    method.attrs.push(parse_quote!(
        #[graphql(complexity = "crate::graphql::connection::page_complexity(first, last, child_complexity)")]
    ));
    // The three arguments added may take a field past clippy's limit of seven; the source has
    // fewer.
    if method.sig.inputs.len() > 7 {
        method.attrs.push(parse_quote!(#[allow(clippy::too_many_arguments)]));
    }
    let body = &method.block;
    method.block = parse_quote!({
        // Typed as written, so that the caller's import is what names it.
        let #name: #ty = crate::graphql::connection::PageArgs { after, before, first, last };
        #body
    });
    Ok(())
}

/// The name and type of a parameter typed `PageArgs` (by its last path segment).
fn page_args(input: &FnArg) -> Option<(syn::Ident, Type)> {
    let FnArg::Typed(typed) = input else { return None };
    let Type::Path(path) = &*typed.ty else { return None };
    if path.path.segments.last()?.ident != "PageArgs" {
        return None;
    }
    match &*typed.pat {
        Pat::Ident(ident) => Some((ident.ident.clone(), (*typed.ty).clone())),
        _ => None,
    }
}
