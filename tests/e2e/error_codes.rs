//! `docs/errors.md` is the catalogue client developers code against; these tests keep it and the
//! source in step, without a server.
//!
//! The rule that finds codes in the source does not depend on where they live: every string
//! literal in `server/src/**/*.rs` (outside `#[cfg(test)]` items) spelled like a code —
//! `[A-Z][A-Z0-9]*(_[A-Z0-9]+)*`, so single words such as `FORBIDDEN` count too — is an error
//! code unless [`NOT_ERROR_CODES`] or [`NOT_ERROR_CODE_PREFIXES`] say otherwise. A new
//! upper-case literal therefore needs a decision: a catalogue entry or an allowlist entry with
//! its reason. A catalogue entry is a code in backticks in the first cell of a table row.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Upper-case string literals in `server/src` that are not error codes, each with its reason.
const NOT_ERROR_CODES: &[&str] = &[
    // Placeholders of `velferd adapter check`'s options in its help (`--expect-error CODE`,
    // `--limits FILE`).
    "CODE",
    "FILE",
    // The ISO 4217 currency of every amount (`Money.currency`, OCDS values).
    "NOK",
    // JWT signature algorithms (`VELFERD_JWT_ALGORITHM`).
    "HS256",
    "RS256",
    // serde's `rename_all` casing for enums written as JSON.
    "SCREAMING_SNAKE_CASE",
    // The `Allow` header of a 405 on GET /graphql.
    "POST",
    // The user-story code of the call-off seeded for tests and benchmarks (`agreements::seed`).
    "US1",
    // The GraphQL scalar named in the `Node` interface's field attribute.
    "ID",
    // Cargo's variable that places GraphiQL's default packages directory in the source tree.
    "CARGO_MANIFEST_DIR",
    // SCAIP message types the demo feed sends: alarm (`ME`) and heartbeat (`PI`).
    "ME",
    "PI",
    // The `Allow` header of a 405 under /fhir.
    "GET",
    // HL7 v3 ActCode `VR` (virtual): the class of the FHIR export's Encounter.
    "VR",
    // Why a webhook endpoint is disabled (`WebhookEndpoint.disabledReason`, docs/webhooks.md):
    // by its owner, or because it answered 410 Gone.
    "MANUAL",
    "GONE",
];

/// Prefixes of upper-case literals that are not error codes.
const NOT_ERROR_CODE_PREFIXES: &[&str] = &[
    // Environment variables of the configuration (`VELFERD_BIND`, `VELFERD_JWT_SECRET`, …).
    "VELFERD_",
    // Cargo's and rustc's environment (`CARGO_MANIFEST_DIR`, `RUSTC_WRAPPER`, …): the demo
    // builds the reference adapters with cargo.
    "CARGO", "RUSTC_",
];

fn server_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn catalogue() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_code_shaped(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.split('_').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Str(String),
    Word(String),
    Punct(char),
}

/// Rust source as words, punctuation and string literals; comments and char literals dropped.
/// Just enough of a lexer that a `"` inside a comment, a char literal or a raw string does not
/// derail it.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            let mut text = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    text.push(chars[i]);
                    i += 1;
                }
                text.push(at(i));
                i += 1;
            }
            i += 1;
            out.push(Token::Str(text));
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the former is skipped.
            if at(i + 1) == '\\' {
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // Raw and byte strings: r"..", r#".."#, b"..", br#".."#.
            let hashes = chars[i..].iter().take_while(|&&h| h == '#').count();
            if matches!(word.as_str(), "r" | "br" | "b") && at(i + hashes) == '"' && (word != "b" || hashes == 0) {
                i += hashes + 1;
                let closing: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                let rest: String = chars[i..].iter().collect();
                let end = rest.find(&closing).unwrap_or(rest.len());
                out.push(Token::Str(rest[..end].to_string()));
                i += rest[..end].chars().count() + closing.chars().count();
            } else {
                out.push(Token::Word(word));
            }
        } else if !c.is_whitespace() {
            out.push(Token::Punct(c));
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

fn is_cfg_test(tokens: &[Token]) -> bool {
    let expected = [
        Token::Punct('#'),
        Token::Punct('['),
        Token::Word("cfg".into()),
        Token::Punct('('),
        Token::Word("test".into()),
        Token::Punct(')'),
        Token::Punct(']'),
    ];
    tokens.starts_with(&expected)
}

/// The tokens of production code: `#[cfg(test)]` items (test modules, test helpers) dropped.
fn production(tokens: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if !is_cfg_test(&tokens[i..]) {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        // Skip the item: up to a `;` before any brace, or to the brace that closes its body.
        i += 7;
        let mut depth = 0;
        while i < tokens.len() {
            match tokens[i] {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                Token::Punct(';') if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

fn production_tokens(path: &Path) -> Vec<Token> {
    production(tokens(&std::fs::read_to_string(path).unwrap()))
}

fn is_allowlisted(literal: &str) -> bool {
    NOT_ERROR_CODES.contains(&literal) || NOT_ERROR_CODE_PREFIXES.iter().any(|p| literal.starts_with(p))
}

/// Every error code the server's source can raise, with the files it appears in.
fn codes_in_source() -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let root = server_src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "found only {} files under {}", files.len(), root.display());
    let mut codes = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
    for file in files {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        for token in production_tokens(&file) {
            if let Token::Str(literal) = token
                && is_code_shaped(&literal)
                && !is_allowlisted(&literal)
            {
                codes.entry(literal).or_default().insert(name.clone());
            }
        }
    }
    codes
}

/// The catalogue's entries: codes in backticks in the first cell of a Markdown table row.
fn codes_in_catalogue(doc: &str) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    for line in doc.lines().map(str::trim).filter(|l| l.starts_with('|')) {
        let first_cell = line.trim_start_matches('|').split('|').next().unwrap_or("");
        for (n, part) in first_cell.split('`').enumerate() {
            if n % 2 == 1 && is_code_shaped(part) {
                codes.insert(part.to_string());
            }
        }
    }
    codes
}

#[test]
fn every_error_code_in_the_source_is_in_the_catalogue_and_back() {
    let in_source = codes_in_source();
    let in_catalogue = codes_in_catalogue(&catalogue());
    assert!(
        in_source.contains_key("FORBIDDEN") && in_source.contains_key("NOT_FOUND"),
        "the scan finds nothing: {in_source:?}"
    );
    let undocumented: Vec<String> = in_source
        .iter()
        .filter(|(code, _)| !in_catalogue.contains(*code))
        .map(|(code, files)| format!("{code} (in {})", files.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    let never_raised: Vec<&String> = in_catalogue.iter().filter(|code| !in_source.contains_key(*code)).collect();
    assert!(
        undocumented.is_empty() && never_raised.is_empty(),
        "docs/errors.md and server/src disagree.\n\
         Codes in the source but not in the catalogue (add a row; if a literal is not an error code, \
         add it with its reason to NOT_ERROR_CODES in tests/e2e/error_codes.rs):\n  {}\n\
         Codes in the catalogue that nothing in the source raises (remove the row):\n  {}",
        if undocumented.is_empty() { "none".to_string() } else { undocumented.join("\n  ") },
        if never_raised.is_empty() {
            "none".to_string()
        } else {
            never_raised.iter().map(|c| c.as_str()).collect::<Vec<_>>().join("\n  ")
        },
    );
}

fn camel_case(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The GraphQL names of the fields of every `impl …Mutation` block in the server's source.
fn mutations_in_source() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&server_src(), &mut files);
    let mut names = BTreeSet::new();
    for file in files {
        let tokens = production_tokens(&file);
        for (i, token) in tokens.iter().enumerate() {
            let Token::Word(impl_word) = token else { continue };
            let is_mutation_impl = impl_word == "impl"
                && matches!(tokens.get(i + 1), Some(Token::Word(name)) if name.ends_with("Mutation"))
                && tokens.get(i + 2) == Some(&Token::Punct('{'));
            if !is_mutation_impl {
                continue;
            }
            // `fn` at depth 1 of the impl block: its methods, which async-graphql exposes.
            let mut depth = 0;
            for (j, t) in tokens.iter().enumerate().skip(i + 2) {
                match t {
                    Token::Punct('{') => depth += 1,
                    Token::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Word(w) if w == "fn" && depth == 1 => {
                        if let Some(Token::Word(name)) = tokens.get(j + 1) {
                            names.insert(camel_case(name));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    names
}

/// Mutations the catalogue has a section for: headings of the form ``### `name` ``.
fn mutations_in_catalogue(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter(|l| l.starts_with("###"))
        .filter_map(|l| {
            let name = l.trim_start_matches('#').trim().strip_prefix('`')?.split('`').next()?;
            name.starts_with(|c: char| c.is_ascii_lowercase()).then(|| name.to_string())
        })
        .collect()
}

#[test]
fn every_mutation_has_its_section_in_the_catalogue_and_back() {
    let in_source = mutations_in_source();
    let in_catalogue = mutations_in_catalogue(&catalogue());
    assert!(in_source.contains("organizationCreate"), "the scan finds no mutations: {in_source:?}");
    let undocumented: Vec<_> = in_source.difference(&in_catalogue).collect();
    let gone: Vec<_> = in_catalogue.difference(&in_source).collect();
    assert!(
        undocumented.is_empty() && gone.is_empty(),
        "docs/errors.md and the mutations disagree.\nMutations without a section: {undocumented:?}\n\
         Sections of mutations that do not exist: {gone:?}"
    );
}

#[test]
fn the_lexer_sees_literals_only_where_rust_does() {
    let source = r####"
        // "IN_A_COMMENT"
        /* "IN_A_BLOCK" /* nested "NESTED" */ */
        fn f<'a>(x: &'a str) -> char { let q = '"'; let e = '\''; g("REAL_CODE", r#"RAW_"CODE"#, b"BYTES"); 'x' }
        #[cfg(test)]
        mod tests { fn t() { h("TEST_ONLY", { "DEEPER" }); } }
        #[cfg(test)]
        use something::TEST_USE;
        const AFTER: &str = "AFTER_TESTS";
    "####;
    let literals: Vec<String> = production(tokens(source))
        .into_iter()
        .filter_map(|t| if let Token::Str(s) = t { Some(s) } else { None })
        .collect();
    assert_eq!(literals, ["REAL_CODE", "RAW_\"CODE", "BYTES", "AFTER_TESTS"]);
    assert!(is_code_shaped("FORBIDDEN") && is_code_shaped("WEIGHTS_OVER_100") && is_code_shaped("HS256"));
    assert!(!is_code_shaped("Forbidden") && !is_code_shaped("_X") && !is_code_shaped("A__B") && !is_code_shaped("A_"));
    assert!(!is_code_shaped("input-too-large") && !is_code_shaped(""));
}
