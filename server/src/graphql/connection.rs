//! Relay cursor connections over keyset pagination.
//!
//! Every list in the API is a connection with `first`/`after`/`last`/`before`, at most
//! [`MAX_PAGE`] items a page (asking for more is an error, as in GitHub's API, rather than a
//! silent truncation), and `totalCount`. Cursors are opaque and encode the sort key and id of
//! an item, so pages stay stable while rows are inserted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Enum, Object};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::{Expr, ExprTrait, SimpleExpr};
use sea_orm::{ColumnTrait, Condition, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select, Value};
use serde::{Deserialize, Serialize};

use super::errors::ApiError;

/// The most items one page may hold.
pub const MAX_PAGE: u64 = 100;
/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE: u64 = 20;

/// Complexity of a connection field: the page size times the cost of one item, so a query
/// that nests large pages is refused before it runs.
pub fn page_complexity(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let size = first.or(last).map(|n| n.clamp(0, MAX_PAGE as i32) as usize).unwrap_or(DEFAULT_PAGE as usize);
    1 + size.max(1) * child
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OrderDirection {
    #[default]
    Asc,
    Desc,
}

/// The position of one item in a sorted list: its sort key and its id (the tie-breaker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "k")]
    pub key: serde_json::Value,
    #[serde(rename = "i")]
    pub id: i64,
}

/// Edges keep their cursor as it is and write it out only when a client asks for it (`cursor`,
/// `pageInfo { startCursor endCursor }`): most pages are read without, and encoding every
/// edge's cursor up front (JSON, then base64) cost more than the rest of a small item.
impl async_graphql::connection::CursorType for Cursor {
    type Error = ApiError;

    fn decode_cursor(text: &str) -> Result<Cursor, ApiError> {
        Cursor::decode("cursor", text)
    }

    fn encode_cursor(&self) -> String {
        self.encode()
    }
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("cursor serialises"))
    }

    fn decode(argument: &str, text: &str) -> Result<Cursor, ApiError> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| ApiError::BadUserInput(format!("`{argument}` is not a cursor from this API")))
    }
}

/// Pagination arguments, checked.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<Cursor>,
    pub before: Option<Cursor>,
    /// `true` when paging from the end (`last`).
    pub backward: bool,
    pub size: u64,
}

impl PageRequest {
    pub fn parse(
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<PageRequest, ApiError> {
        let size = |name: &str, n: i32| -> Result<u64, ApiError> {
            if n < 0 {
                Err(ApiError::BadUserInput(format!("`{name}` must not be negative")))
            } else if n as u64 > MAX_PAGE {
                Err(ApiError::BadUserInput(format!(
                    "requesting {n} records with `{name}` exceeds the limit of {MAX_PAGE} records per page"
                )))
            } else {
                Ok(n as u64)
            }
        };
        let (backward, size) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadUserInput("pass `first` or `last`, not both".into()));
            }
            (Some(n), None) => (false, size("first", n)?),
            (None, Some(n)) => (true, size("last", n)?),
            (None, None) => (false, DEFAULT_PAGE),
        };
        Ok(PageRequest {
            after: after.as_deref().map(|c| Cursor::decode("after", c)).transpose()?,
            before: before.as_deref().map(|c| Cursor::decode("before", c)).transpose()?,
            backward,
            size,
        })
    }
}

/// A connection field's answer: one page of `T`, with `totalCount`.
pub type Page<T> = Connection<Cursor, T, TotalCount>;

/// One page of rows, in the order the client asked for, with the page's flags.
struct Rows<M> {
    rows: Vec<M>,
    has_previous_page: bool,
    has_next_page: bool,
    /// How many rows the whole list has, when it was asked for and the page is not empty.
    total: Option<u64>,
}

/// The column that carries the list's count on every row of a page.
const TOTAL_COLUMN: &str = "velferd_total_count";

/// A row of a page with the count of the whole list beside it.
struct Counted<M> {
    row: M,
    total: i64,
}

impl<M: sea_orm::FromQueryResult> sea_orm::FromQueryResult for Counted<M> {
    fn from_query_result(res: &sea_orm::QueryResult, pre: &str) -> Result<Self, sea_orm::DbErr> {
        Ok(Counted { row: M::from_query_result(res, pre)?, total: res.try_get(pre, TOTAL_COLUMN)? })
    }
}

/// Fetches one page of `select` ordered by `sort` then `id` in `direction`; with `count`, the
/// same statement counts the whole list (cursors aside) in a scalar subquery that the database
/// runs once, so a page and its `totalCount` are one round trip and one snapshot.
///
/// `sort.key_of` turns a cursor's key back into a value comparable with `sort.column`.
async fn fetch_page<E, C>(
    db: &C,
    select: Select<E>,
    sort: SortKey<E::Column>,
    id: E::Column,
    direction: OrderDirection,
    request: &PageRequest,
    count: bool,
) -> Result<Rows<E::Model>, ApiError>
where
    E: EntityTrait,
    C: sea_orm::ConnectionTrait,
{
    use sea_orm::QueryTrait;
    use sea_orm::sea_query::{Alias, Query, SubQueryStatement};
    let counted = count.then(|| {
        let list = select.clone().into_query();
        let count = Query::select().expr(Expr::cust("COUNT(*)")).from_subquery(list, Alias::new("list")).to_owned();
        SimpleExpr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(count)))
    });
    let SortKey { column: sort, key_of } = sort;
    let bound = |cursor: &Cursor, name: &str, after: bool| -> Result<Condition, ApiError> {
        let key = key_of(&cursor.key)
            .ok_or_else(|| ApiError::BadUserInput(format!("`{name}` cursor belongs to another ordering")))?;
        // "after" in ascending order means greater; descending flips it.
        let greater = after == (direction == OrderDirection::Asc);
        let beyond = |col: E::Column, v: Value| -> SimpleExpr { if greater { col.gt(v) } else { col.lt(v) } };
        Ok(Condition::any()
            .add(beyond(sort, key.clone()))
            .add(Condition::all().add(Expr::col(sort).eq(key)).add(beyond(id, cursor.id.into()))))
    };
    let mut select = select;
    if let Some(cursor) = &request.after {
        select = select.filter(bound(cursor, "after", true)?);
    }
    if let Some(cursor) = &request.before {
        select = select.filter(bound(cursor, "before", false)?);
    }
    let ascending = (direction == OrderDirection::Asc) != request.backward;
    let order = if ascending { Order::Asc } else { Order::Desc };
    let select = select.order_by(sort, order.clone()).order_by(id, order).limit(request.size + 1);
    let (mut rows, total) = match counted {
        Some(count) => {
            let counted = select.column_as(count, TOTAL_COLUMN).into_model::<Counted<E::Model>>().all(db).await?;
            let total = counted.first().map(|c| u64::try_from(c.total).unwrap_or(0));
            (counted.into_iter().map(|c| c.row).collect::<Vec<_>>(), total)
        }
        None => (select.all(db).await?, None),
    };
    let more = rows.len() as u64 > request.size;
    rows.truncate(request.size as usize);
    if request.backward {
        rows.reverse();
        Ok(Rows { rows, has_previous_page: more, has_next_page: request.before.is_some(), total })
    } else {
        Ok(Rows { rows, has_previous_page: request.after.is_some(), has_next_page: more, total })
    }
}

type CountFuture = Pin<Box<dyn Future<Output = Result<u64, ApiError>> + Send>>;

/// `totalCount`, counted only when a client asks for it.
#[derive(Clone)]
pub struct TotalCount(Arc<dyn Fn() -> CountFuture + Send + Sync>);

impl TotalCount {
    pub fn new<F, Fut>(count: F) -> TotalCount
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<u64, ApiError>> + Send + 'static,
    {
        TotalCount(Arc::new(move || Box::pin(count())))
    }
}

impl TotalCount {
    /// A count already known (lists loaded whole by a DataLoader).
    pub fn known(count: u64) -> TotalCount {
        TotalCount::new(move || async move { Ok(count) })
    }
}

/// Pages through a list already in memory, ordered by id: the nested lists of one object
/// (participants, user stories …) are loaded for many parents in one batched query, then paged
/// here, so their statement count does not grow with the number of parents.
pub fn page_in_memory<T>(rows: Vec<T>, id_of: impl Fn(&T) -> i64, request: &PageRequest) -> Page<T>
where
    T: async_graphql::OutputType,
{
    let total = rows.len() as u64;
    let within = |row: &T| {
        let id = id_of(row);
        request.after.as_ref().is_none_or(|c| id > c.id) && request.before.as_ref().is_none_or(|c| id < c.id)
    };
    // The rows are taken, not cloned: a page is most of what its list holds.
    let window: Vec<T> = rows.into_iter().filter(within).collect();
    let size = request.size as usize;
    let (range, has_previous, has_next) = if request.backward {
        let start = window.len().saturating_sub(size);
        (start..window.len(), start > 0, request.before.is_some())
    } else {
        let end = window.len().min(size);
        (0..end, request.after.is_some(), window.len() > size)
    };
    let mut connection = Connection::with_additional_fields(has_previous, has_next, TotalCount::known(total));
    connection.edges = window
        .into_iter()
        .skip(range.start)
        .take(range.len())
        .map(|row| {
            let id = id_of(&row);
            Edge::new(Cursor { key: serde_json::json!(id), id }, row)
        })
        .collect();
    connection
}

/// A connection field's arguments as the client gave them, unchecked: a resolver takes them as
/// one `page: PageArgs` parameter, which `#[velferd_macros::connections]` on its `#[Object]`
/// impl writes out as the four GraphQL arguments.
pub struct PageArgs {
    pub after: Option<String>,
    pub before: Option<String>,
    pub first: Option<i32>,
    pub last: Option<i32>,
}

impl PageArgs {
    /// Checks the arguments: sizes within [`MAX_PAGE`], cursors from this API.
    pub fn parse(self) -> Result<PageRequest, ApiError> {
        PageRequest::parse(self.after, self.before, self.first, self.last)
    }
}

/// The nested list of one parent, loaded (batched) by its DataLoader `key`, filtered by `keep`,
/// wrapped for GraphQL and paged in memory: the chain every nested connection repeats.
pub(crate) async fn load_page<K, M, T>(
    ctx: &async_graphql::Context<'_>,
    key: K,
    page: PageArgs,
    keep: impl Fn(&M) -> bool,
    wrap: impl Fn(M) -> T,
    id_of: impl Fn(&T) -> i64,
) -> async_graphql::Result<Page<T>>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    super::loaders::DbLoader:
        async_graphql::dataloader::Loader<K, Value = Vec<M>, Error = std::sync::Arc<sea_orm::DbErr>>,
    T: async_graphql::OutputType,
{
    let page = page.parse()?;
    let rows: Vec<T> =
        super::context::load_one(ctx, key).await?.unwrap_or_default().into_iter().filter(keep).map(wrap).collect();
    Ok(page_in_memory(rows, id_of, &page))
}

#[Object]
impl TotalCount {
    /// How many items match the filter, across all pages.
    async fn total_count(&self) -> async_graphql::Result<u64> {
        Ok((self.0)().await?)
    }
}

/// Pages a query ordered by id in `direction`, with a lazily counted `totalCount`.
pub async fn page_by_id<E, T>(
    ctx: &async_graphql::Context<'_>,
    direction: OrderDirection,
    select: Select<E>,
    id: E::Column,
    page: &PageRequest,
    id_of: impl Fn(&E::Model) -> i64,
    wrap: impl Fn(E::Model) -> T,
) -> async_graphql::Result<Page<T>>
where
    E: EntityTrait,
    E::Model: Sync,
    T: async_graphql::OutputType,
{
    page_sorted(ctx, select, SortKey::integer(id), id, direction, page, |row| {
        let id = id_of(&row);
        (Cursor { key: serde_json::json!(id), id }, wrap(row))
    })
    .await
}

/// The column a list is sorted by, and how a cursor's key is read back as a value of it.
pub struct SortKey<C> {
    pub column: C,
    pub key_of: fn(&serde_json::Value) -> Option<Value>,
}

impl<C> SortKey<C> {
    /// A text column: its cursor keys are strings.
    pub fn text(column: C) -> SortKey<C> {
        SortKey { column, key_of: |k| k.as_str().map(|s| Value::from(s.to_string())) }
    }

    /// An integer column, such as the id: its cursor keys are numbers.
    pub fn integer(column: C) -> SortKey<C> {
        SortKey { column, key_of: |k| k.as_i64().map(Value::from) }
    }
}

/// Pages a query ordered by `sort` then `id` in `direction`, with a lazily counted
/// `totalCount`; `edge` gives a row's cursor (its sort key and id) and its GraphQL object.
pub async fn page_sorted<E, T>(
    ctx: &async_graphql::Context<'_>,
    select: Select<E>,
    sort: SortKey<E::Column>,
    id: E::Column,
    direction: OrderDirection,
    page: &PageRequest,
    edge: impl Fn(E::Model) -> (Cursor, T),
) -> async_graphql::Result<Page<T>>
where
    E: EntityTrait,
    E::Model: Sync,
    T: async_graphql::OutputType,
{
    use sea_orm::PaginatorTrait;
    let db = super::context::state(ctx).db.read().clone();
    let wants_total = ctx.look_ahead().field("totalCount").exists();
    let counted = select.clone();
    let rows = fetch_page(&db, select, sort, id, direction, page, wants_total).await?;
    // An empty page carries no count: that list is counted on its own, if asked.
    let total = match rows.total {
        Some(total) => TotalCount::known(total),
        None => TotalCount::new(move || {
            let (select, db) = (counted.clone(), db.clone());
            async move { Ok(select.count(&db).await?) }
        }),
    };
    let mut connection = Connection::with_additional_fields(rows.has_previous_page, rows.has_next_page, total);
    connection.edges = rows
        .rows
        .into_iter()
        .map(|row| {
            let (cursor, item) = edge(row);
            Edge::new(cursor, item)
        })
        .collect();
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_capped_with_a_clear_error() {
        assert_eq!(PageRequest::parse(None, None, None, None).unwrap().size, DEFAULT_PAGE);
        assert_eq!(PageRequest::parse(None, None, Some(100), None).unwrap().size, 100);
        let e = PageRequest::parse(None, None, Some(101), None).unwrap_err();
        assert!(e.to_string().contains("exceeds the limit of 100"), "{e}");
        assert!(PageRequest::parse(None, None, None, Some(-1)).is_err());
        assert!(PageRequest::parse(None, None, Some(1), Some(1)).is_err());
        assert!(PageRequest::parse(Some("garbage".into()), None, None, None).is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { key: serde_json::json!("Bergen"), id: 7 };
        let text = c.encode();
        assert_eq!(Cursor::decode("after", &text).unwrap(), c);
    }

    #[test]
    fn complexity_grows_with_page_size() {
        assert!(page_complexity(Some(100), None, 3) > page_complexity(Some(10), None, 3));
        assert_eq!(page_complexity(Some(1000), None, 1), page_complexity(Some(100), None, 1));
    }
}
