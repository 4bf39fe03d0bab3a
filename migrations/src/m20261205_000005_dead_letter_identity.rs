//! A dead letter's identity is its message's: product, normalised content type and bytes. Until
//! now it was the bytes alone (`uq_dead_letter_body`), so the same bytes under two content types
//! became one dead letter that kept the first type and could never decode as the second.
//!
//! Up adds `message_key` (SHA-256 over the three, length-prefixed), keys every existing row in
//! Rust (the same code on SQLite and PostgreSQL), creates `uq_dead_letter_message` and drops
//! `uq_dead_letter_body`. Down reverses it, and refuses — deleting nothing — while two dead
//! letters of a product share their bytes, since the old index cannot hold both.
//!
//! The key and the content-type normalisation are defined here, beside the migration that keys
//! the stored rows, and the server uses these same functions: stored and new keys cannot drift.
//! Changing either needs a new migration that recomputes every key.

use sea_orm_migration::prelude::*;
use sha2::{Digest, Sha256};

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeadLetter {
    Table,
    Id,
    ProductId,
    ContentType,
    Body,
    BodySha256,
    MessageKey,
}

/// Longest content type accepted, in bytes (the width of the `content_type` columns).
pub const MAX_CONTENT_TYPE_BYTES: usize = 200;

/// Rows keyed per statement while backfilling.
const CHUNK: u64 = 500;

/// The identity of a device message: SHA-256, hex, over its product's id, its normalised content
/// type and its body, each prefixed by its length (8 bytes, big-endian) so that no two
/// different triples hash the same bytes.
pub fn message_key(product_id: i64, content_type: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [product_id.to_string().as_bytes(), content_type.as_bytes(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    format!("{:x}", hash.finalize())
}

fn is_token(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Normalises a content type (RFC 9110 `media-type`): type and subtype lower-cased, parameter
/// names lower-cased, `charset` values lower-cased, parameters sorted by name, whitespace and
/// empty parameters dropped, quotes kept only where a value needs them. `Err` says what is wrong.
pub fn normalise_content_type(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_CONTENT_TYPE_BYTES {
        return Err(format!("it is {} bytes; at most {MAX_CONTENT_TYPE_BYTES} are accepted", raw.len()));
    }
    if let Some(c) = raw.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ' || *c == '\t')) {
        return Err(format!("it holds {c:?}; only visible ASCII, spaces and tabs are allowed"));
    }
    let (media, mut rest) = raw.split_once(';').unwrap_or((raw, ""));
    let media = media.trim_matches([' ', '\t']);
    let valid_media = media
        .split_once('/')
        .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && t.chars().all(is_token) && s.chars().all(is_token));
    if !valid_media {
        return Err(if media.is_empty() {
            "it is empty; send type/subtype".into()
        } else {
            format!("{media:?} is not type/subtype")
        });
    }
    let mut parameters: Vec<(String, String)> = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            break;
        }
        let end = rest.find(['=', ';']).unwrap_or(rest.len());
        if !rest[end..].starts_with('=') {
            return Err(format!("parameter {:?} has no value", rest[..end].trim_end()));
        }
        let (name, after) = (rest[..end].to_ascii_lowercase(), &rest[end + 1..]);
        if name.is_empty() || !name.chars().all(is_token) {
            return Err(format!("{name:?} is not a parameter name"));
        }
        let (mut value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((i, '"')) => break i + 1,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c)) => value.push(c),
                            None => return Err(format!("the value of {name:?} ends inside a quoted string")),
                        },
                        Some((_, c)) => value.push(c),
                        None => return Err(format!("the value of {name:?} ends inside a quoted string")),
                    }
                };
                (value, &quoted[end..])
            }
            None => {
                let end = after.find([';', ' ', '\t']).unwrap_or(after.len());
                let value = &after[..end];
                if value.is_empty() || !value.chars().all(is_token) {
                    return Err(format!("the value of {name:?} is neither a token nor a quoted string"));
                }
                (value.to_string(), &after[end..])
            }
        };
        rest = after.trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(';')) {
            return Err(format!("unexpected {:?} after the value of {name:?}", rest.split(';').next().unwrap_or(rest)));
        }
        if parameters.iter().any(|(n, _)| *n == name) {
            return Err(format!("parameter {name:?} appears twice"));
        }
        if name == "charset" {
            value.make_ascii_lowercase();
        }
        parameters.push((name, value));
    }
    parameters.sort();
    let mut normalised = media.to_ascii_lowercase();
    for (name, value) in parameters {
        normalised.push(';');
        normalised.push_str(&name);
        normalised.push('=');
        if !value.is_empty() && value.chars().all(is_token) {
            normalised.push_str(&value);
        } else {
            normalised.push('"');
            normalised.push_str(&value.replace('\\', "\\\\").replace('"', "\\\""));
            normalised.push('"');
        }
    }
    Ok(normalised)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Nullable because SQLite cannot add a NOT NULL column without a default; every row is
        // keyed below and the server always writes the key.
        ddl::add_column(
            manager,
            DeadLetter::Table,
            ColumnDef::new(DeadLetter::MessageKey).string_len(64).null().to_owned(),
        )
        .await?;
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let mut after = 0i64;
        loop {
            let select = Query::select()
                .columns([DeadLetter::Id, DeadLetter::ProductId, DeadLetter::ContentType, DeadLetter::Body])
                .from(DeadLetter::Table)
                .and_where(Expr::col(DeadLetter::Id).gt(after))
                .order_by(DeadLetter::Id, Order::Asc)
                .limit(CHUNK)
                .to_owned();
            let rows = db.query_all_raw(backend.build(&select)).await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let id: i64 = row.try_get("", "id")?;
                let product_id: i64 = row.try_get("", "product_id")?;
                let content_type: String = row.try_get("", "content_type")?;
                let body: Vec<u8> = row.try_get("", "body")?;
                // A type stored before content types were checked may not parse: keyed as stored,
                // it stays replayable (and no valid new message can share its key).
                let normalised = normalise_content_type(&content_type).unwrap_or(content_type);
                let update = Query::update()
                    .table(DeadLetter::Table)
                    .value(DeadLetter::MessageKey, message_key(product_id, &normalised, &body))
                    .and_where(Expr::col(DeadLetter::Id).eq(id))
                    .to_owned();
                db.execute_raw(backend.build(&update)).await?;
                after = id;
            }
        }
        let message = [DeadLetter::ProductId, DeadLetter::MessageKey];
        manager.create_index(ddl::unique("uq_dead_letter_message", DeadLetter::Table, message)).await?;
        manager.drop_index(Index::drop().name("uq_dead_letter_body").table(DeadLetter::Table).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let shared = Query::select()
            .expr(Expr::col(DeadLetter::Id).count())
            .from(DeadLetter::Table)
            .group_by_columns([DeadLetter::ProductId, DeadLetter::BodySha256])
            .and_having(Expr::col(DeadLetter::Id).count().gt(1))
            .to_owned();
        let conflicts = db.query_all_raw(manager.get_database_backend().build(&shared)).await?.len();
        if conflicts > 0 {
            return Err(DbErr::Migration(format!(
                "{conflicts} set(s) of dead letters share their bytes under different content types; the old unique \
                 index on the bytes cannot hold them, and deleting one would lose an acknowledged message"
            )));
        }
        let bytes = [DeadLetter::ProductId, DeadLetter::BodySha256];
        manager.create_index(ddl::unique("uq_dead_letter_body", DeadLetter::Table, bytes)).await?;
        manager.drop_index(Index::drop().name("uq_dead_letter_message").table(DeadLetter::Table).to_owned()).await?;
        ddl::drop_column(manager, DeadLetter::Table, DeadLetter::MessageKey).await
    }
}

// The normalisation's behaviour is tested with the server's `ContentType`, which wraps it.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_separates_its_parts() {
        assert_ne!(message_key(1, "a/b", b"c"), message_key(1, "a/bc", b""));
        assert_ne!(message_key(1, "a/b", b"x"), message_key(11, "a/b", b"x"));
        assert_eq!(message_key(7, "text/plain", b"x").len(), 64);
    }
}
