//! Relay ids at the GraphQL edge: the encoding is `crate::ids`; here an id becomes an `ID`, and
//! an id in an input or argument becomes a row or the error the client sees.

use async_graphql::ID;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Select};

use crate::errors::{ApiError, Invalid};
pub use crate::ids::{NodeType, parse_global_id, row_id};

pub fn global_id(node_type: NodeType, row_id: i64) -> ID {
    ID(crate::ids::global_id(node_type, row_id))
}

/// The former name of [`row_id`], kept for the HTTP shell.
pub use crate::ids::row_id as row_id_of;

/// The row a mutation input's id names: a wrong or mismatched id is a `NOT_FOUND` user error
/// on that field, like an id of a row that does not exist.
pub fn input_row(id: &ID, expected: NodeType, field: &'static str) -> Result<i64, Invalid> {
    row_id(id, expected).ok_or_else(|| Invalid::not_found(field, format!("`{field}` is not a {expected:?} id")))
}

/// The row a query argument's id names: a wrong or mismatched id is the client's mistake.
pub fn argument_row(id: &ID, expected: NodeType, argument: &str) -> Result<i64, ApiError> {
    row_id(id, expected).ok_or_else(|| ApiError::BadUserInput(format!("`{argument}` is not a {expected:?} id")))
}

/// A query narrowed by an optional id argument.
pub trait FilterById: Sized {
    type Column;

    /// Only the rows whose `column` holds the row `id` names, when it is given. A wrong or
    /// mismatched id is the client's mistake, as in [`argument_row`].
    fn filter_id(
        self,
        column: Self::Column,
        id: &Option<ID>,
        expected: NodeType,
        argument: &str,
    ) -> Result<Self, ApiError>;
}

impl<E: EntityTrait> FilterById for Select<E> {
    type Column = E::Column;

    fn filter_id(
        self,
        column: E::Column,
        id: &Option<ID>,
        expected: NodeType,
        argument: &str,
    ) -> Result<Self, ApiError> {
        Ok(match id {
            Some(id) => self.filter(column.eq(argument_row(id, expected, argument)?)),
            None => self,
        })
    }
}
