//! Validation of exports against the official OCDS 1.1.5 release-package schema, read from
//! `../shared/schemas/ocds-1.1.5/` (or `$VELFERD_SHARED_SCHEMAS/ocds-1.1.5/`), never fetched.

use std::path::PathBuf;

use serde_json::Value;

const RELEASE_SCHEMA_URL: &str = "https://standard.open-contracting.org/schema/1__1__5/release-schema.json";

fn schema_dir() -> Option<PathBuf> {
    let dir = match std::env::var("VELFERD_SHARED_SCHEMAS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/schemas")),
    }
    .join("ocds-1.1.5");
    if dir.join("release-package-schema.json").exists() {
        Some(dir)
    } else {
        assert!(std::env::var("CI").is_err(), "CI needs the OCDS schemas at {}", dir.display());
        eprintln!("skipped: OCDS schemas not found at {}", dir.display());
        None
    }
}

struct LocalRelease(Value);

impl jsonschema::Retrieve for LocalRelease {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri.as_str() == RELEASE_SCHEMA_URL {
            Ok(self.0.clone())
        } else {
            Err(format!("no local copy of {uri}; refusing to fetch it").into())
        }
    }
}

/// Panics with every schema error when `package` is not a valid OCDS 1.1.5 release package.
pub fn assert_valid_release_package(package: &Value) {
    let Some(dir) = schema_dir() else { return };
    let read = |name: &str| -> Value { serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap() };
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .with_retriever(LocalRelease(read("release-schema.json")))
        .build(&read("release-package-schema.json"))
        .expect("the package schema compiles with the release schema resolved locally");
    let errors: Vec<String> = validator.iter_errors(package).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "the OCDS export is invalid:\n{}", errors.join("\n"));
}
