//! How a stored column is answered as a GraphQL field: what `#[velferd_macros::row_fields]`
//! writes for a field declared without a body (`async fn url(&self) -> &str;`).

use chrono::{DateTime, FixedOffset, Utc};

/// A stored value answered as a field of type `T`; the field's declared type picks the impl.
pub trait RowField<'a, T> {
    fn answer(&'a self) -> T;
}

/// Numbers, flags, dates and enums answer as stored.
impl<T: Copy> RowField<'_, T> for T {
    fn answer(&self) -> T {
        *self
    }
}

impl<'a> RowField<'a, &'a str> for String {
    fn answer(&'a self) -> &'a str {
        self
    }
}

impl<'a> RowField<'a, Option<&'a str>> for Option<String> {
    fn answer(&'a self) -> Option<&'a str> {
        self.as_deref()
    }
}

/// Timestamps are stored with the offset they were written with and answered in UTC.
impl RowField<'_, DateTime<Utc>> for DateTime<FixedOffset> {
    fn answer(&self) -> DateTime<Utc> {
        self.to_utc()
    }
}

impl RowField<'_, Option<DateTime<Utc>>> for Option<DateTime<FixedOffset>> {
    fn answer(&self) -> Option<DateTime<Utc>> {
        self.map(|t| t.to_utc())
    }
}
