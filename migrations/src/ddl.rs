//! How the migrations declare tables, so that each table, column and index is written once:
//! [`schema!`] turns a list of tables and indexes into the `DeriveIden` enums and the
//! `tables()`/`indexes()` a migration creates, and [`migration!`] makes a migration of them
//! whose down drops exactly what its up created. Every table starts with the same `id` key; a
//! reference is a big-integer column with a foreign key to another table's `id`, deleted with it.
//!
//! A table a later migration refers to is used through the enum of the migration that declares
//! it (`use crate::m20261122_000001_organizations::Organization`), never declared again. A
//! migration that has run must go on building the same schema, so change anything here only
//! with `tests/schema.rs` passing on SQLite and PostgreSQL.

use sea_orm_migration::{prelude::*, schema::*};

/// The column every reference points at.
#[derive(DeriveIden)]
pub struct Id;

/// `CREATE TABLE IF NOT EXISTS name` with its `id` key first.
pub fn table(name: impl IntoIden, id: impl IntoIden) -> TableCreateStatement {
    Table::create().table(name).if_not_exists().col(big_pk_auto(id)).to_owned()
}

/// A column of a table: a plain one, or a reference to the table named last.
pub enum Column {
    Plain(ColumnDef),
    Reference(ColumnDef, DynIden, DynIden),
}

impl From<ColumnDef> for Column {
    fn from(column: ColumnDef) -> Self {
        Column::Plain(column)
    }
}

/// A required reference from `column` to `table`'s `id`.
pub fn references(column: impl IntoIden, table: impl IntoIden) -> Column {
    let column = column.into_iden();
    Column::Reference(big_integer(column.clone()), column, table.into_iden())
}

/// An optional reference (`NULL` where there is none).
pub fn references_null(column: impl IntoIden, table: impl IntoIden) -> Column {
    let column = column.into_iden();
    Column::Reference(big_integer_null(column.clone()), column, table.into_iden())
}

/// Adds `column` to `table`; a reference with its foreign key, by which rows go with the row
/// they belong to (deleting a procurement deletes its participants).
pub fn add(table: &mut TableCreateStatement, column: impl Into<Column>) {
    match column.into() {
        Column::Plain(definition) => table.col(definition),
        Column::Reference(definition, column, target) => table
            .col(definition)
            .foreign_key(ForeignKey::create().from_col(column).to(target, Id).on_delete(ForeignKeyAction::Cascade)),
    };
}

/// A unique index: a rule the database enforces, so concurrent writers cannot break it.
pub fn unique(name: &str, table: impl IntoIden, keys: impl IntoIterator<Item = impl IntoIden>) -> IndexCreateStatement {
    index(name, table, keys).unique().to_owned()
}

/// A plain index, for lookups.
pub fn index(name: &str, table: impl IntoIden, keys: impl IntoIterator<Item = impl IntoIden>) -> IndexCreateStatement {
    let mut index = Index::create().name(name).table(table).if_not_exists().to_owned();
    for key in keys {
        index.col(key.into_iden());
    }
    index
}

/// Creates the tables in order (a table after those it references), then the indexes.
pub async fn create(
    manager: &SchemaManager<'_>,
    tables: Vec<TableCreateStatement>,
    indexes: Vec<IndexCreateStatement>,
) -> Result<(), DbErr> {
    for table in tables {
        manager.create_table(table).await?;
    }
    for index in indexes {
        manager.create_index(index).await?;
    }
    Ok(())
}

/// Drops the tables [`create`] made, in reverse order (their indexes go with them).
pub async fn drop_tables(manager: &SchemaManager<'_>, tables: Vec<TableCreateStatement>) -> Result<(), DbErr> {
    for table in tables.iter().rev() {
        let name = table.get_table_name().expect("a table to create has a name").clone();
        manager.drop_table(Table::drop().table(name).to_owned()).await?;
    }
    Ok(())
}

/// Adds `column` to the existing `table`. One column per statement: SQLite alters one column
/// at a time.
pub async fn add_column(manager: &SchemaManager<'_>, table: impl IntoIden, column: ColumnDef) -> Result<(), DbErr> {
    manager.alter_table(Table::alter().table(table).add_column(column).to_owned()).await
}

/// Drops `column` of the existing `table`.
pub async fn drop_column(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    column: impl IntoIden,
) -> Result<(), DbErr> {
    manager.alter_table(Table::alter().table(table).drop_column(column).to_owned()).await
}

/// Inserts one row into `table`: each column beside its value.
pub async fn insert_row<C: IntoIden>(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    row: impl IntoIterator<Item = (C, Expr)>,
) -> Result<(), DbErr> {
    let (columns, values): (Vec<C>, Vec<Expr>) = row.into_iter().unzip();
    let insert = Query::insert().into_table(table).columns(columns).values_panic(values).to_owned();
    manager.get_connection().execute_raw(manager.get_database_backend().build(&insert)).await?;
    Ok(())
}

/// What a [`migration!`] of its tables alone does besides creating and dropping them.
pub async fn nothing_more(_: &SchemaManager<'_>) -> Result<(), DbErr> {
    Ok(())
}

/// Declares a migration's tables with their indexes: one `DeriveIden` enum per table (`Table`,
/// `Id` and its columns), `tables()` in the order they are created and `indexes()`.
///
/// ```ignore
/// ddl::schema! {
///     #[unique(uq_tender_supplier: ProcurementId, SupplierId)]
///     #[index(idx_tender_procurement: ProcurementId)]
///     Tender {
///         ProcurementId: references(Procurement::Table),
///         SupplierId: references(Organization::Table),
///         SubmittedAt: timestamp_with_time_zone,
///     }
/// }
/// ```
///
/// A column's kind is a function of `sea_orm_migration::schema` or [`references`], called with
/// the column and the arguments given, then with the methods given (`.unique_key()`).
macro_rules! schema {
    ($(
        $(#[$index:ident($name:ident: $($key:ident),+)])*
        $table:ident {
            $($column:ident: $kind:ident $(($($arg:expr),+))? $(.$modifier:ident())*),* $(,)?
        }
    )*) => {
        $(
            // A column may be named after its table (`adapter.adapter_id` style); renaming the
            // variant would rename the column.
            #[allow(clippy::enum_variant_names)]
            #[derive($crate::DeriveIden)]
            pub enum $table {
                Table,
                Id,
                $($column),*
            }
        )*

        fn tables() -> Vec<$crate::TableCreateStatement> {
            vec![$({
                let mut table = $crate::ddl::table($table::Table, $table::Id);
                $(
                    #[allow(unused_mut)]
                    let mut column = $kind($table::$column $($(, $arg)+)?);
                    $(column.$modifier();)*
                    $crate::ddl::add(&mut table, column);
                )*
                table
            }),*]
        }

        fn indexes() -> Vec<$crate::IndexCreateStatement> {
            vec![$($($crate::ddl::$index(stringify!($name), $table::Table, [$($table::$key),+]),)*)*]
        }
    };
}
pub(crate) use schema;

/// A migration of [`schema!`] alone: up creates its tables and indexes, down drops the tables in
/// reverse order. Both come from the one declaration, so they cannot drift apart.
///
/// A migration that does more than create its tables names the functions that do it:
/// `then: after_up;` runs once the tables exist, `first: before_down;` before they are dropped
/// (each `async fn(&SchemaManager<'_>) -> Result<(), DbErr>`).
macro_rules! migration {
    (then: $after_up:path; first: $before_down:path; $($schema:tt)*) => {
        #[derive($crate::DeriveMigrationName)]
        pub struct Migration;

        #[$crate::async_trait::async_trait]
        impl $crate::MigrationTrait for Migration {
            async fn up(&self, manager: &$crate::SchemaManager) -> Result<(), $crate::DbErr> {
                $crate::ddl::create(manager, tables(), indexes()).await?;
                $after_up(manager).await
            }

            async fn down(&self, manager: &$crate::SchemaManager) -> Result<(), $crate::DbErr> {
                $before_down(manager).await?;
                $crate::ddl::drop_tables(manager, tables()).await
            }
        }

        $crate::ddl::schema! { $($schema)* }
    };
    (then: $after_up:path; $($schema:tt)*) => {
        $crate::ddl::migration! { then: $after_up; first: $crate::ddl::nothing_more; $($schema)* }
    };
    ($($schema:tt)*) => {
        $crate::ddl::migration! { then: $crate::ddl::nothing_more; first: $crate::ddl::nothing_more; $($schema)* }
    };
}
pub(crate) use migration;
