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

/// Writes the body of every field of an `#[Object]` impl that is declared without one: such a
/// field answers the column of the same name of the object's row (`self.0`), and `id` answers
/// the row's global id under the node type named like the object.
///
/// Put it above `#[Object]` (and `#[connections]`). `async fn url(&self) -> &str;` becomes
/// `{ RowField::answer(&self.0.url) }`: `crate::graphql::row::RowField` says how a stored value
/// is answered (a `String` as `&str`, a timestamp in UTC, a `Copy` value as it is), so the
/// declared type picks the conversion and a column of another type does not compile. A field
/// that computes, renames or loads keeps its body.
///
/// ```ignore
/// #[row_fields]
/// #[Object]
/// impl WebhookAttempt {
///     pub async fn id(&self) -> ID;
///
///     /// The answer's HTTP status; null when none came.
///     async fn status_code(&self) -> Option<i32>;
/// }
/// ```
#[proc_macro_attribute]
pub fn row_fields(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let message = "`#[row_fields]` takes no arguments";
        return syn::Error::new(proc_macro2::TokenStream::from(attr).span(), message).to_compile_error().into();
    }
    let mut block = parse_macro_input!(item as ItemImpl);
    let Type::Path(self_ty) = &*block.self_ty else {
        let message = "`#[row_fields]` goes on the impl of a named object";
        return syn::Error::new(block.self_ty.span(), message).to_compile_error().into();
    };
    let object = self_ty.path.segments.last().expect("a path has a segment").ident.clone();
    for item in &mut block.items {
        let ImplItem::Verbatim(tokens) = item else { continue };
        match syn::parse2::<BodilessFn>(tokens.clone()).and_then(|field| row_field(field, &object)) {
            Ok(method) => *item = ImplItem::Fn(method),
            Err(e) => return e.to_compile_error().into(),
        }
    }
    quote!(#block).into()
}

/// A method declared without a body: `/// doc` `pub async fn name(&self) -> T;`.
struct BodilessFn {
    attrs: Vec<syn::Attribute>,
    vis: syn::Visibility,
    sig: syn::Signature,
}

impl syn::parse::Parse for BodilessFn {
    fn parse(input: syn::parse::ParseStream) -> syn::Result<BodilessFn> {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        input.parse::<syn::Token![;]>()?;
        Ok(BodilessFn { attrs, vis, sig })
    }
}

/// The field `field` with the body that answers its column (or, for `id`, the global id).
fn row_field(field: BodilessFn, object: &syn::Ident) -> syn::Result<syn::ImplItemFn> {
    let only_self = field.sig.inputs.len() == 1 && matches!(field.sig.inputs.first(), Some(FnArg::Receiver(_)));
    if !only_self {
        return Err(syn::Error::new(field.sig.span(), "a field without a body takes only `&self`"));
    }
    let name = &field.sig.ident;
    let block: syn::Block = if name == "id" {
        parse_quote!({
            crate::graphql::relay::global_id(crate::graphql::relay::NodeType::#object, self.0.id)
        })
    } else {
        parse_quote!({ crate::graphql::row::RowField::answer(&self.0.#name) })
    };
    Ok(syn::ImplItemFn { attrs: field.attrs, vis: field.vis, defaultness: None, sig: field.sig, block })
}

/// Implements `crate::errors::RuleViolation` for an error enum from one attribute per variant,
/// so a rule's message (`#[error]`, thiserror), input field and stable code stand together.
///
/// Each variant carries `#[violation(field = "…", code = "…")]` (`field = ""` for the whole
/// input), or `#[violation(transparent)]` on a one-field variant that wraps another violation
/// (usually `Invalid`), whose field and code it reports. A variant without the attribute is a
/// compile error, so no violation goes without a code.
///
/// ```ignore
/// #[derive(Debug, thiserror::Error, RuleViolation)]
/// pub enum AgreementError {
///     #[error(transparent)]
///     #[violation(transparent)]
///     Invalid(#[from] Invalid),
///     #[error("only the lead's procurement officers make agreements")]
///     #[violation(field = "awardId", code = "NOT_LEAD")]
///     NotLead,
/// }
/// ```
#[proc_macro_derive(RuleViolation, attributes(violation))]
pub fn derive_rule_violation(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as syn::DeriveInput);
    match rule_violation(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What one variant reports.
enum Violation {
    Fixed { field: syn::LitStr, code: syn::LitStr },
    Transparent,
}

fn rule_violation(input: &syn::DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let syn::Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(input.span(), "`RuleViolation` is derived for enums of violations"));
    };
    let name = &input.ident;
    let mut field_arms = Vec::new();
    let mut code_arms = Vec::new();
    for variant in &data.variants {
        let ident = &variant.ident;
        match violation_of(variant)? {
            Violation::Fixed { field, code } => {
                field_arms.push(quote!(#name::#ident { .. } => #field));
                code_arms.push(quote!(#name::#ident { .. } => #code));
            }
            Violation::Transparent => {
                let pattern = match &variant.fields {
                    syn::Fields::Unnamed(fields) if fields.unnamed.len() == 1 => quote!(#name::#ident(inner)),
                    syn::Fields::Named(fields) if fields.named.len() == 1 => {
                        let only = fields.named[0].ident.as_ref().expect("named field");
                        quote!(#name::#ident { #only: inner })
                    }
                    _ => {
                        let message = "`#[violation(transparent)]` needs a variant with exactly one field";
                        return Err(syn::Error::new(variant.span(), message));
                    }
                };
                field_arms.push(quote!(#pattern => crate::errors::RuleViolation::field(inner)));
                code_arms.push(quote!(#pattern => crate::errors::RuleViolation::code(inner)));
            }
        }
    }
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics crate::errors::RuleViolation for #name #type_generics #where_clause {
            fn field(&self) -> &'static str {
                match self { #(#field_arms,)* }
            }
            fn code(&self) -> &'static str {
                match self { #(#code_arms,)* }
            }
        }
    })
}

/// The `#[violation(…)]` attribute of one variant.
fn violation_of(variant: &syn::Variant) -> syn::Result<Violation> {
    let mut found = None;
    for attr in variant.attrs.iter().filter(|a| a.path().is_ident("violation")) {
        if found.is_some() {
            return Err(syn::Error::new(attr.span(), "one `#[violation]` per variant"));
        }
        let (mut field, mut code, mut transparent) = (None, None, false);
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("transparent") {
                transparent = true;
            } else if meta.path.is_ident("field") {
                field = Some(meta.value()?.parse::<syn::LitStr>()?);
            } else if meta.path.is_ident("code") {
                let literal = meta.value()?.parse::<syn::LitStr>()?;
                let value = literal.value();
                let code_shaped = !value.is_empty()
                    && value.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !code_shaped {
                    return Err(meta.error("a code is SCREAMING_SNAKE_CASE, e.g. `NOT_FOUND`"));
                }
                code = Some(literal);
            } else {
                return Err(meta.error("expected `field = \"…\"`, `code = \"…\"` or `transparent`"));
            }
            Ok(())
        })?;
        found = Some(match (transparent, field, code) {
            (true, None, None) => Violation::Transparent,
            (false, Some(field), Some(code)) => Violation::Fixed { field, code },
            _ => {
                let message = "write `#[violation(field = \"…\", code = \"…\")]` or `#[violation(transparent)]`";
                return Err(syn::Error::new(attr.span(), message));
            }
        });
    }
    found.ok_or_else(|| {
        syn::Error::new(variant.span(), "every violation needs `#[violation(field = \"…\", code = \"…\")]`")
    })
}
