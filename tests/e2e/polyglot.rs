//! The JavaScript and Python reference adapters (issue 15) go the whole way a supplier's
//! adapter goes: built from source with the registries' own toolchains, signed, uploaded
//! asking for the limits they need, approved at activation, and decoding real messages at
//! ingest to the same events as the Rust reference adapter they replace. (That they decode
//! everything alike — samples and generated messages — is `plugins/host/tests/polyglot.rs`.)

use serde_json::{Value, json};

use crate::adapter_limits::{activate_approving, upload_with_limits};
use crate::devices::{DISPENSER, Fleet, ingest, live_reference_adapters, sample};
use crate::polyglot_support::{Lang, component_path};
use crate::support::{Backend, TestApp};

/// What each adapter asks for: the measured need with room (docs/adapter-benchmarks.md), and a
/// deadline a loaded CI machine cannot miss.
fn requested_limits(lang: Lang) -> Value {
    match lang {
        Lang::JavaScript => json!({ "componentBytes": 2 << 20, "fuel": 250_000_000, "deadlineMs": 1000 }),
        Lang::Python => {
            json!({ "componentBytes": 20 << 20, "memoryBytes": 16 << 20, "fuel": 100_000_000, "deadlineMs": 1000 })
        }
    }
}

const SAMPLES: [&str; 3] = ["morning-dose.json", "lid-power-offline.json", "refill-jam-fault.json"];

async fn replaces_the_rust_adapter(lang: Lang) {
    let Some(path) = component_path(lang) else { return };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let fleet = Fleet::new(&app).await;
    live_reference_adapters(&app, &fleet).await;
    let integration = fleet.integration_token(&app);
    // The Rust adapter stores the samples' events first.
    let mut rust = Vec::new();
    for file in SAMPLES {
        let (status, reply) =
            ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", file)).await;
        assert_eq!(status, 200, "{file}: {reply}");
        rust.push(reply["results"][0]["eventsStored"].as_u64().unwrap());
    }

    let component = std::fs::read(&path).unwrap();
    // Over the default limits, the upload is refused unless it asks for room.
    let refused = upload_with_limits(&app, &fleet, DISPENSER, component.clone(), Value::Null).await;
    assert_eq!(refused["userErrors"][0]["code"], "INVALID_COMPONENT", "{}: {refused}", lang.name());
    let uploaded = upload_with_limits(&app, &fleet, DISPENSER, component, requested_limits(lang)).await;
    assert_eq!(uploaded["userErrors"], json!([]), "{}: {uploaded}", lang.name());
    let id = uploaded["adapter"]["id"].as_str().unwrap();
    let activated = activate_approving(&app, id, true).await;
    assert_eq!(activated["userErrors"], json!([]), "{activated}");
    assert_eq!(
        (&activated["adapter"]["status"], &activated["adapter"]["limitsApproval"]),
        (&json!("ACTIVE"), &json!("APPROVED"))
    );

    // The same messages again, now decoded by this adapter: the very events the Rust adapter
    // stored (same devices, same supplier event ids), so every one is a duplicate.
    for (file, stored) in SAMPLES.iter().zip(rust) {
        let (status, reply) =
            ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", file)).await;
        let result = &reply["results"][0];
        assert_eq!(status, 200, "{} {file}: {reply}", lang.name());
        assert_eq!(
            (result["status"].as_str(), result["eventsDuplicate"].as_u64()),
            (Some("DUPLICATE"), Some(stored)),
            "{} {file}: {reply}",
            lang.name()
        );
    }
    // And a malformed message becomes a dead letter, as with the Rust adapter.
    let (status, reply) =
        ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "malformed.json")).await;
    assert_eq!((status, reply["results"][0]["reason"]["code"].as_str()), (202, Some("malformed")), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_adapter_is_uploaded_approved_and_decodes_like_the_rust_one() {
    replaces_the_rust_adapter(Lang::JavaScript).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_adapter_is_uploaded_approved_and_decodes_like_the_rust_one() {
    replaces_the_rust_adapter(Lang::Python).await;
}
