//! Shorthands for the storage model's sea-orm declarations.

/// Declares an enum stored as a string: the derives every stored enum needs (`DeriveActiveEnum`
/// and its `EnumIter`, the comparisons a status is used with), then the caller's attributes and
/// enum unchanged and in order: docs, further derives (its GraphQL enum, serde), the column's
/// `#[sea_orm(rs_type = "String", db_type = "...")]` and each variant's
/// `#[sea_orm(string_value = "...")]`. The values are in the database: never change one.
///
/// ```ignore
/// crate::stored_enum! {
///     /// Where a delivery stands.
///     #[derive(async_graphql::Enum)]
///     #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
///     pub enum DeliveryStatus {
///         #[sea_orm(string_value = "pending")]
///         Pending,
///     }
/// }
/// ```
#[macro_export]
macro_rules! stored_enum {
    ($(#[$attr:meta])* $vis:vis enum $name:ident { $($variants:tt)* }) => {
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            sea_orm::entity::prelude::EnumIter,
            sea_orm::entity::prelude::DeriveActiveEnum,
        )]
        $(#[$attr])*
        $vis enum $name { $($variants)* }
    };
}

/// Declares a table's entity (`Model`, and from it sea-orm's `Entity`, `Column`, `ActiveModel`
/// …): the derives every entity has, then the caller's attributes and struct unchanged and in
/// order (docs, further derives such as serde, `#[sea_orm(table_name = "...")]`, each field's
/// `#[sea_orm(...)]`), then the two items sea-orm asks of every entity: its `Relation` enum,
/// empty — Velferd declares no sea-orm relations, queries join or load by id — and the default
/// `ActiveModelBehavior`. Put it in the entity's own module.
///
/// ```ignore
/// pub mod alert_step {
///     use super::*;
///
///     crate::entity! {
///         /// One step of an alert's handling.
///         #[sea_orm(table_name = "alert_step")]
///         pub struct Model {
///             #[sea_orm(primary_key)]
///             pub id: i64,
///         }
///     }
/// }
/// ```
#[macro_export]
macro_rules! entity {
    ($(#[$attr:meta])* pub struct Model { $($fields:tt)* }) => {
        #[derive(Clone, Debug, PartialEq, Eq, sea_orm::entity::prelude::DeriveEntityModel)]
        $(#[$attr])*
        pub struct Model { $($fields)* }

        #[derive(Copy, Clone, Debug, sea_orm::entity::prelude::EnumIter, sea_orm::entity::prelude::DeriveRelation)]
        pub enum Relation {}

        impl sea_orm::entity::prelude::ActiveModelBehavior for ActiveModel {}
    };
}

/// The base of a new row recording a change `caller` makes now, for the table's own columns to
/// be added to: `subject` (cut to the column's 200 characters), `organization_id`, `role` and
/// `at` set, the rest unset. `table` names the entity's module, in scope.
///
/// ```ignore
/// device_status_change::ActiveModel {
///     device_id: Set(device.id),
///     ..crate::changed_by!(device_status_change, caller)
/// }
/// ```
#[macro_export]
macro_rules! changed_by {
    ($table:ident, $caller:expr) => {{
        let caller: &$crate::auth::Caller = $caller;
        $table::ActiveModel {
            subject: sea_orm::ActiveValue::Set(caller.subject.chars().take(200).collect()),
            organization_id: sea_orm::ActiveValue::Set(caller.org.id),
            role: sea_orm::ActiveValue::Set(caller.role.as_str().to_string()),
            at: sea_orm::ActiveValue::Set(chrono::Utc::now().fixed_offset()),
            ..Default::default()
        }
    }};
}

/// The base of a new row `caller` creates now, for the table's own columns to be added to:
/// `created_by` (cut to the column's 200 characters), `created_at` and `updated_at` set, the
/// rest unset. `table` names the entity's module, in scope.
#[macro_export]
macro_rules! created_by {
    ($table:ident, $caller:expr) => {{
        let caller: &$crate::auth::Caller = $caller;
        let now = chrono::Utc::now().fixed_offset();
        $table::ActiveModel {
            created_by: sea_orm::ActiveValue::Set(caller.subject.chars().take(200).collect()),
            created_at: sea_orm::ActiveValue::Set(now),
            updated_at: sea_orm::ActiveValue::Set(now),
            ..Default::default()
        }
    }};
}

#[cfg(test)]
mod tests {
    use sea_orm::entity::prelude::*;
    use sea_orm::{ActiveEnum, Iterable};

    crate::stored_enum! {
        /// A lamp's light.
        #[derive(PartialOrd, Ord)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(12))")]
        pub enum Light {
            #[sea_orm(string_value = "red")]
            Red,
            /// Both at once.
            #[sea_orm(string_value = "amber_red")]
            AmberRed,
        }
    }

    #[test]
    fn a_stored_enum_is_kept_as_the_strings_and_column_its_attributes_name() {
        assert_eq!(Light::iter().map(|l| l.to_value()).collect::<Vec<_>>(), ["red", "amber_red"]);
        assert_eq!(Light::try_from_value(&"amber_red".to_owned()).ok(), Some(Light::AmberRed));
        assert!(Light::try_from_value(&"green".to_owned()).is_err());
        assert_eq!(format!("{:?}", Light::db_type()), format!("{:?}", ColumnType::String(StringLen::N(12)).def()));
        assert!(Light::Red < Light::AmberRed, "the caller's own derives are kept");
    }
}
