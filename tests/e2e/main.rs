//! End-to-end tests: a real `velferd` server on a random port, real HTTP, a fresh database per
//! test. One test binary, so the suite links once.

mod support;

/// The guest adapters (reference and hostile), built from source once per test run.
#[path = "../../plugins/host/tests/common/mod.rs"]
mod guests;
/// The JavaScript and Python reference adapters, built from source once per test run.
#[path = "../../plugins/host/tests/polyglot_support/mod.rs"]
mod polyglot_support;

mod adapter_cli;
mod adapter_limits;
mod agreements;
mod alerts;
mod attack;
mod audit;
mod auth;
mod authz_matrix;
mod benefits;
mod binary;
mod care;
mod care_text;
mod crash;
mod demo;
mod devices;
mod devices_access;
mod error_codes;
mod fhir;
mod fuzz_corpus;
mod graphiql;
mod guards;
mod health;
mod ingest_plans;
mod learning;
mod live;
mod nodes;
mod ocds;
mod oracles;
mod organizations;
mod outage;
mod outbound;
mod polyglot;
#[allow(dead_code, reason = "shared with the benchmarks, which use other parts")]
mod process;
mod procurement;
mod protocol;
mod receiver;
mod refusals;
mod retention;
mod roles;
mod rows;
mod schema;
mod serve;
mod story;
mod telemetry;
mod throttle;
mod webhooks;
mod websocket;
mod wire;
