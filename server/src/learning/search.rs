//! Full-text search over experience reports (title, summary and lessons), one filter for both
//! back ends: SQLite's FTS5 table `experience_report_fts` (kept in sync by triggers) and
//! PostgreSQL's `to_tsvector('simple', search_text) @@ plainto_tsquery('simple', …)` (GIN
//! index). Both match every word of the query, ignoring case.

use sea_orm::sea_query::Expr;

use crate::db::Backend;

/// The words of a query, lowercased like the indexed text: runs of letters and digits.
pub fn words(query: &str) -> Vec<String> {
    query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// An FTS5 query matching every word, each quoted so no word is read as an operator.
pub fn fts5_query(words: &[String]) -> String {
    words.iter().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
}

/// A condition on `experience_report` that holds for the reports matching `query`; a query
/// without words matches nothing.
pub fn matches(backend: Backend, query: &str) -> Expr {
    let words = words(query);
    if words.is_empty() {
        return Expr::cust("1 = 0");
    }
    match backend {
        Backend::Sqlite => Expr::cust_with_values(
            "experience_report.id IN (SELECT rowid FROM experience_report_fts WHERE experience_report_fts MATCH ?)",
            [fts5_query(&words)],
        ),
        Backend::Postgres => Expr::cust_with_values(
            "to_tsvector('simple', experience_report.search_text) @@ plainto_tsquery('simple', $1)",
            [words.join(" ")],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_become_quoted_words_so_operators_cannot_be_injected() {
        let w = words("følgekommune NEAR(\"x\" OR y) *");
        assert_eq!(w, ["følgekommune", "near", "x", "or", "y"]);
        assert_eq!(fts5_query(&w[..2]), "\"følgekommune\" \"near\"");
        assert_eq!(words("HÅNDTERING"), ["håndtering"]);
        assert!(words(" -*\" ").is_empty());
    }
}
