//! GraphiQL, the newcomer's first screen, served whole by Velferd: no file comes from a CDN, so
//! the page works on networks that block them (common in the health sector). React, ReactDOM
//! and GraphiQL come from the npm packages pinned by `server/graphiql/package-lock.json`,
//! installed by [`INSTALL_COMMAND`] and read from `VELFERD_GRAPHIQL_DIR` when the server starts;
//! Velferd's own start script and stylesheet are compiled in. Without the packages the page is
//! a plain one naming the missing files and the command that installs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// The command, run at the repository's top, that installs the packages.
pub const INSTALL_COMMAND: &str = "npm ci --prefix server/graphiql";

/// Where the page's files are served, by name.
pub const ASSETS_PATH: &str = "/graphiql/assets";

/// The page's policy: every file from this server, requests to this server only (`'self'`
/// covers its `ws:`/`wss:` origin for subscriptions), nothing inline but style attributes and
/// `<style>` elements GraphiQL's dialogs add, and the page never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The fallback page's policy: no script, nothing fetched.
const FALLBACK_POLICY: &str = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The packages' files the page loads, in order: name served under [`ASSETS_PATH`], path under
/// the packages' directory, content type. React's production builds, not the development ones.
const PACKAGE_FILES: &[(&str, &str, &str)] = &[
    ("graphiql.min.css", "graphiql/graphiql.min.css", CSS),
    ("react.production.min.js", "react/umd/react.production.min.js", JAVASCRIPT),
    ("react-dom.production.min.js", "react-dom/umd/react-dom.production.min.js", JAVASCRIPT),
    ("graphiql.min.js", "graphiql/graphiql.min.js", JAVASCRIPT),
];

/// Velferd's own files, kept beside the lockfile and compiled in.
const OWN_FILES: &[(&str, &str, &str)] = &[
    ("velferd-graphiql.css", include_str!("../../graphiql/velferd-graphiql.css"), CSS),
    ("velferd-graphiql.js", include_str!("../../graphiql/velferd-graphiql.js"), JAVASCRIPT),
];

/// The page's title, also shown as GraphiQL's logo.
pub const TITLE: &str = "Velferd GraphiQL";

/// The tabs GraphiQL opens on (a browser that used the page before keeps its own tabs). Each
/// names its operation: GraphiQL titles a tab by it.
pub const STARTING_TABS: &[&str] = &[OVERVIEW_TAB, ALERTS_TAB];

/// The procurement overview (the README's), with how to sign in. Lines fit GraphiQL's editor
/// beside its answer.
pub const OVERVIEW_TAB: &str = r#"# Velferd: joint procurements of welfare technology by
# Norwegian municipalities, and the devices they run.
#
# Without a token you are anonymous: public data only.
# To act as a role, mint a token with `velferd token`
# (README, "Trying it as each role", has them all):
#   cargo run -q -- token --org 918082956 \
#     --role procurement_officer      # Larvik kommune
# and paste it in the Headers editor below:
#   {"Authorization": "Bearer <token>"}
# It goes with every query and mutation, and opens
# every subscription's socket. The browser does not
# store it: paste it again after a reload.
#
# The procurement overview (run it: ▶ or Ctrl-Enter):
query Overview($after: String) {
  procurements(
    first: 20
    after: $after
    filter: { category: MEDICATION_SUPPORT }
  ) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id title phase
      lead { name }
      totals {
        municipalities counties inhabitants
        municipalitiesWithUnknownPopulation
      }
      userStories {
        nodes {
          code title
          award { supplier { name } }
        }
      }
    }
  }
}
"#;

/// The response centre operator's first subscription.
pub const ALERTS_TAB: &str = r#"# The response centre's alerts as they are raised,
# live over a WebSocket (graphql-transport-ws). Needs
# the token of an `operator` of a response centre that
# serves the municipality, e.g. the demo's:
#   cargo run -q -- token --role operator \
#     --org-name "Demo responssenter (fiktivt)"
# in the Headers editor:
#   {"Authorization": "Bearer <token>"}
# Anonymous, it answers an error. Each new alert
# replaces the one shown; after a reconnect, pass
# afterSequence: "<the last sequence>" to catch up.
subscription Alerts {
  alertRaised {
    sequence
    alert {
      id kind severity raisedAt status
      deviceSerial recipientReference
    }
  }
}
"#;

/// One file served under [`ASSETS_PATH`].
struct Asset {
    bytes: Bytes,
    content_type: &'static str,
    /// A digest of the content: the `ETag`, and the version in the page's links.
    version: String,
}

impl Asset {
    fn new(bytes: Vec<u8>, content_type: &'static str) -> Asset {
        let digest = Sha256::digest(&bytes);
        let version = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Asset { bytes: Bytes::from(bytes), content_type, version }
    }
}

/// GraphiQL's page and files, read once when the server starts.
pub struct Graphiql {
    page: String,
    assets: BTreeMap<&'static str, Asset>,
    missing: Vec<PathBuf>,
}

impl Graphiql {
    /// Reads the packages' files from `dir` (`server/graphiql/node_modules` once installed).
    pub fn load(dir: &Path) -> Graphiql {
        let mut assets = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, path, content_type) in PACKAGE_FILES {
            let path = dir.join(path);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    assets.insert(*name, Asset::new(bytes, content_type));
                }
                Err(_) => missing.push(path),
            }
        }
        if !missing.is_empty() {
            return Graphiql { page: fallback_page(dir, &missing), assets: BTreeMap::new(), missing };
        }
        for (name, text, content_type) in OWN_FILES {
            assets.insert(*name, Asset::new(text.as_bytes().to_vec(), content_type));
        }
        Graphiql { page: page(&assets), assets, missing }
    }

    /// The packages' files that were not found (none: GraphiQL is served).
    pub fn missing(&self) -> &[PathBuf] {
        &self.missing
    }

    /// The page `GET /graphql` answers: GraphiQL, or the fallback.
    pub fn page_response(&self) -> HttpResponse {
        let policy = if self.missing.is_empty() { CONTENT_SECURITY_POLICY } else { FALLBACK_POLICY };
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_SECURITY_POLICY, policy))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            // Small, and it names the files' versions: always asked again.
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(self.page.clone())
    }

    /// One file: kept a year by the browser when asked for by the version the page links
    /// (a new version gets a new link), revalidated by its `ETag` otherwise.
    pub fn asset_response(&self, req: &HttpRequest, name: &str) -> HttpResponse {
        let Some(asset) = self.assets.get(name) else {
            return super::error_response(
                actix_web::http::StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("no GraphiQL file {name:?}"),
            );
        };
        let etag = format!("\"{}\"", asset.version);
        let linked = req.query_string() == format!("v={}", asset.version);
        let cache = if linked { "public, max-age=31536000, immutable" } else { "no-cache" };
        let not_modified = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
        let mut response = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
        response
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
        if not_modified {
            return response.finish();
        }
        response.content_type(asset.content_type).body(asset.bytes.clone())
    }
}

/// Text for HTML element content.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(assets: &BTreeMap<&'static str, Asset>) -> String {
    let link = |name: &str| format!("{ASSETS_PATH}/{name}?v={}", assets[name].version);
    let config = serde_json::json!({
        "title": TITLE,
        "endpoint": "/graphql",
        "subscriptionEndpoint": "/graphql/ws",
        "tabs": STARTING_TABS.iter().map(|query| serde_json::json!({ "query": query })).collect::<Vec<_>>(),
    });
    // Inside <script>, only `</script` or `<!--` could end the element early: no `<` at all.
    let config = config.to_string().replace('<', "\\u003c");
    let styles = ["graphiql.min.css", "velferd-graphiql.css"]
        .map(|name| format!("    <link rel=\"stylesheet\" href=\"{}\">\n", link(name)))
        .concat();
    let scripts = ["react.production.min.js", "react-dom.production.min.js", "graphiql.min.js"]
        .map(|name| format!("    <script src=\"{}\"></script>\n", link(name)))
        .concat();
    let head = format!(
        r#"    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title}</title>
    <link rel="icon" href="data:,">
{styles}"#,
        title = escape_html(TITLE),
    );
    let start = link("velferd-graphiql.js");
    let body = format!(
        r#"    <div id="graphiql">Loading GraphiQL…</div>
    <noscript>GraphiQL needs JavaScript. Without it, POST GraphQL requests to /graphql.</noscript>
{scripts}    <script type="application/json" id="velferd-graphiql-config">{config}</script>
    <script src="{start}"></script>
"#
    );
    html_page(&head, &body)
}

/// An HTML page that search engines do not index: the head's lines after the character set
/// and robots (its title among them), and the body's; each line indented and ending in a
/// newline.
fn html_page(head: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="robots" content="noindex">
{head}  </head>
  <body>
{body}  </body>
</html>
"#
    )
}

fn fallback_page(dir: &Path, missing: &[PathBuf]) -> String {
    let files: String = missing
        .iter()
        .map(|path| format!("      <li><code>{}</code></li>\n", escape_html(&path.display().to_string())))
        .collect();
    let head = format!("    <title>{}: files missing</title>\n", escape_html(TITLE));
    let body = format!(
        r#"    <h1>GraphiQL's files are not installed</h1>
    <p>Velferd serves GraphiQL from its own files, never from a CDN. It did not find these when it started:</p>
    <ul>
{files}    </ul>
    <p>Install them at the top of the repository, then restart the server:</p>
    <pre>{command}</pre>
    <p>They are looked for in <code>{dir}</code> (the setting <code>VELFERD_GRAPHIQL_DIR</code>).
      The API works without them: POST GraphQL requests to <code>/graphql</code>, subscriptions on
      <code>/graphql/ws</code>.</p>
"#,
        command = escape_html(INSTALL_COMMAND),
        dir = escape_html(&dir.display().to_string()),
    );
    html_page(&head, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_names_what_is_missing_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let graphiql = Graphiql::load(dir.path());
        assert_eq!(graphiql.missing().len(), PACKAGE_FILES.len());
        assert!(graphiql.page.contains(INSTALL_COMMAND), "{}", graphiql.page);
        assert!(graphiql.page.contains("react-dom.production.min.js"), "{}", graphiql.page);
        assert!(!graphiql.page.contains("<script") && !graphiql.page.contains("://"), "{}", graphiql.page);
        assert!(graphiql.assets.is_empty());
    }

    #[test]
    fn the_tabs_fit_the_editor_beside_the_answer() {
        for tab in STARTING_TABS {
            let widest = tab.lines().map(|line| line.chars().count()).max().unwrap();
            assert!(widest <= 54, "{widest} characters in {tab}");
        }
    }

    #[test]
    fn the_page_links_its_files_by_version_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for (_, path, _) in PACKAGE_FILES {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("/* {} */", path.display())).unwrap();
        }
        let graphiql = Graphiql::load(dir.path());
        assert!(graphiql.missing().is_empty());
        for (name, asset) in &graphiql.assets {
            assert!(graphiql.page.contains(&format!("{ASSETS_PATH}/{name}?v={}", asset.version)), "{name}");
        }
        assert!(!graphiql.page.contains("://"), "{}", graphiql.page);
        // The tabs' text, which holds `<token>`, cannot close the config element.
        assert_eq!(graphiql.page.matches("</script>").count(), 5, "{}", graphiql.page);
    }
}
