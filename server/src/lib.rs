//! Velferd: joint procurement and operation of welfare technology for Norwegian municipalities.
//!
//! Areas live in their own modules (storage model, rules and GraphQL types together);
//! `http` and `cli` are thin shells around them.

pub mod agreements;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod devices;
pub mod errors;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod learning;
pub mod money;
pub mod organizations;
pub mod procurement;
pub mod telemetry;
pub mod text;

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
}

/// Connects, migrates, optionally loads the demo data, and starts serving.
pub async fn start(settings: &Settings, demo: bool, workers: usize) -> Result<http::RunningServer, StartError> {
    let db = Database::connect(&settings.database_url, settings.db_max_connections, settings.connect_timeout()).await?;
    db.migrate().await?;
    if demo {
        demo::load(&db).await.map_err(|e| StartError::Demo(e.to_string()))?;
    }
    let adapters = devices::runtime::AdapterRuntime::new(
        settings.devices.adapter_limits.clone(),
        settings.devices.adapter_concurrency,
    )
    .map_err(StartError::Adapters)?;
    let state = AppState::new(db, adapters, settings.devices.clone());
    let metrics = match settings.metrics_bind {
        Some(addr) => {
            Some(http::serve_metrics(addr, state.clone()).map_err(|source| StartError::MetricsBind { addr, source })?)
        }
        None => None,
    };
    let server =
        http::start(settings, state, workers).map_err(|source| StartError::Bind { addr: settings.bind, source })?;
    Ok(match metrics {
        Some(metrics) => server.with_metrics(metrics),
        None => server,
    })
}
