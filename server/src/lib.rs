//! Velferd: joint procurement and operation of welfare technology for Norwegian municipalities.
//!
//! Areas live in their own modules (storage model, rules and GraphQL types together);
//! `http` and `cli` are thin shells around them.

/// The domain areas, one line each: the area's module, its node types (the objects with a
/// global id, at `crate::<area>::graphql::<Type>`, each implementing `NodeObject`) and the roots
/// its `graphql` module adds to the schema (named `Query`, `Mutation`, `Subscription` there).
/// `$callback` receives the table: below it declares the modules, `ids` the node types,
/// `graphql::node` the `Node` interface, `graphql` the merged roots and `graphql::loaders`
/// re-exports each area's DataLoader keys (`<area>::loaders`); the e2e tests ask each area's
/// test file (`tests/e2e/<area>.rs`) for node samples. Append new areas: the order is the order
/// of the roots' fields in the SDL.
///
/// `cargo fmt` does not see modules a macro declares: `.ci/run` names their files to rustfmt.
#[macro_export]
macro_rules! areas {
    ($callback:ident) => {
        $callback! {
            organizations: nodes [Organization], roots [Query, Mutation, Subscription];
            procurement: nodes [Procurement, UserStory, EvaluationCriterion, Tender, TenderResponse, Award], roots [Query, Mutation];
            agreements: nodes [FrameworkAgreement, CallOff], roots [Mutation];
            learning: nodes [LearningNetwork, Gathering, ExperienceReport, ProcurementReuse], roots [Query, Mutation];
            devices: nodes [DeviceProduct, Adapter, SigningKey, Device, DeviceEvent, DeadLetter], roots [Query, Mutation, Subscription];
            refusals: nodes [], roots [Query];
            care: nodes [ServiceRecipient, Assessment], roots [Query, Mutation];
            audit: nodes [], roots [Query];
            alerts: nodes [Alert, ServiceAgreement], roots [Query, Mutation, Subscription];
            fhir: nodes [], roots [Query, Mutation];
            benefits: nodes [], roots [Query, Mutation];
            webhooks: nodes [WebhookEndpoint, WebhookDelivery], roots [Query, Mutation];
        }
    };
}

macro_rules! area_modules {
    ($($area:ident: nodes [$($node:ident),*], roots [$($root:ident),*];)*) => {
        $(pub mod $area;)*
    };
}

areas!(area_modules);

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod entity;
pub mod errors;
pub mod failpoint;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod live;
pub mod money;
pub mod outbound;
pub mod retention;
pub mod telemetry;
pub mod text;
pub mod throttle;

use crate::app::AppState;
use crate::config::Settings;
use crate::db::{Database, DbStartError};

/// Why the service could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Database(#[from] DbStartError),
    #[error("VELFERD_BIND: cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("VELFERD_METRICS_BIND: cannot listen on {addr}: {source}")]
    MetricsBind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("loading demo data failed: {0}")]
    Demo(String),
    #[error("{0}")]
    Adapters(String),
    #[error("starting live updates (the outbox reader) failed: {0}")]
    Live(sea_orm::DbErr),
    #[error("starting webhooks failed: {0}")]
    Webhooks(sea_orm::DbErr),
    #[error("reading token revocations failed: {0}")]
    Revocations(sea_orm::DbErr),
    #[error("setting up the platform operator's organisation failed: {0}")]
    Operator(#[from] organizations::OperatorError),
    #[error(transparent)]
    Outbound(#[from] outbound::OutboundConfigError),
}

/// Connects, migrates, optionally loads the demo data, and starts serving.
pub async fn start(settings: &Settings, demo: bool, workers: usize) -> Result<http::RunningServer, StartError> {
    let mode = if demo { DemoMode::Data } else { DemoMode::Off };
    Ok(start_with_demo(settings, mode, workers).await?.0)
}

/// How much of the demo a start sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoMode {
    Off,
    /// The demo organisations, procurements and learning data.
    Data,
    /// That, the reference adapters active and the demo devices registered.
    Devices,
    /// That, and the demo feed posting device messages to this server's ingest.
    Feed,
}

/// [`start`] with the demo set up as `demo` says; answers the server and, with
/// [`DemoMode::Feed`], the running feed (dropping it stops the feed).
pub async fn start_with_demo(
    settings: &Settings,
    demo: DemoMode,
    workers: usize,
) -> Result<(http::RunningServer, Option<demo::feed::DemoFeed>), StartError> {
    if settings.audit_keys.current.is_development() {
        tracing::warn!(
            "the audit log is anchored with the published development key: anyone can forge its anchors; set \
             VELFERD_AUDIT_KEY_FILE (production refuses to start without it)"
        );
    }
    audit::key::install(settings.audit_keys.clone());
    // Before the database: a bad trust roots file stops the start at once.
    let outbound = outbound::Outbound::new(&settings.outbound)?;
    let db = Database::connect_with(
        &settings.database_url,
        settings.db_max_connections,
        settings.connect_timeout(),
        settings.sqlite,
    )
    .await?;
    db.migrate().await?;
    if demo != DemoMode::Off {
        demo::load(&db).await.map_err(|e| StartError::Demo(e.to_string()))?;
    }
    // After the demo data, which loads only into an empty database.
    organizations::ensure_operator(db.write(), &settings.operator.name, settings.operator.org_number).await?;
    let adapters = devices::runtime::AdapterRuntime::new(&settings.devices).map_err(StartError::Adapters)?;
    let demo_devices = match demo {
        DemoMode::Devices | DemoMode::Feed => {
            demo::devices::load(&db, &adapters).await.map_err(|e| StartError::Demo(e.to_string()))?
        }
        DemoMode::Off | DemoMode::Data => None,
    };
    let revocations =
        organizations::revocations::Revocations::start(db.clone()).await.map_err(StartError::Revocations)?;
    care::sweep::start(db.clone(), settings.care_retention_days);
    let live =
        live::Live::start(db.clone(), settings.live.clone(), &settings.database_url).await.map_err(StartError::Live)?;
    let webhooks = webhooks::Webhooks::start(db.clone(), live.clone(), outbound.clone(), settings.webhooks.clone())
        .await
        .map_err(StartError::Webhooks)?;
    let mut state = AppState::new(
        db,
        live,
        adapters,
        settings.devices.clone(),
        revocations,
        settings.throttle.clone(),
        settings.refusal_log_flush,
        settings.alerts.clone(),
        outbound,
    );
    state.benefits_min_recipients = settings.benefits_min_recipients;
    let webhooks = std::sync::Arc::new(webhooks);
    state.webhooks = Some(webhooks.clone());
    state.retention = Some(std::sync::Arc::new(retention::Retention::start(
        state.db.clone(),
        settings.retention.clone(),
        state.metrics.clone(),
    )));
    let metrics = match settings.metrics_bind {
        Some(addr) => {
            Some(http::serve_metrics(addr, state.clone()).map_err(|source| StartError::MetricsBind { addr, source })?)
        }
        None => None,
    };
    let server =
        http::start(settings, state, workers).map_err(|source| StartError::Bind { addr: settings.bind, source })?;
    webhooks.listening_on(server.addr);
    let server = match metrics {
        Some(metrics) => server.with_metrics(metrics),
        None => server,
    };
    let feed = match (demo, demo_devices) {
        (DemoMode::Feed, Some(devices)) => {
            let signer = auth::TokenSigner::new(&settings.jwt)
                .map_err(|e| StartError::Demo(format!("the demo feed mints its own ingest tokens: {}", e.0)))?;
            Some(demo::feed::start(server.addr, signer, devices).await)
        }
        _ => None,
    };
    Ok((server, feed))
}
