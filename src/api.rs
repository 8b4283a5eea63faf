//! The HTTP endpoint: `GET /healthz` (liveness) and `GET /readyz`
//! (readiness), each a JSON body naming what is failing and since when
//! (see [`crate::health`]), 200 when all is well, 503 otherwise; and
//! `GET /metrics` for Prometheus (see [`crate::metrics`]). Configured by
//! `[api]` ([`ApiConfig`]; `[notify.api]` for `tidewater notify`, which
//! serves its own [`Endpoints`]): an address the operator chose must work;
//! the default one may be taken, and then the process runs without the
//! endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::health::Health;
use crate::metrics::Metrics;

/// `[api]`: the HTTP endpoint (`/healthz`, `/readyz`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// `host:port`; port 0 picks a free port (logged at start-up). When not
    /// set and the default port is taken, tidewater runs without the endpoint.
    #[serde(default)]
    pub address: Option<std::net::SocketAddr>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address: None,
        }
    }
}

/// The API's address when none is configured.
pub const DEFAULT_API_ADDRESS: &str = "0.0.0.0:8686";
/// `tidewater notify`'s API address when none is configured (another port,
/// so both can run on one host).
pub const DEFAULT_NOTIFY_API_ADDRESS: &str = "0.0.0.0:8687";

fn default_enabled() -> bool {
    true
}

/// What the three endpoints answer.
pub trait Endpoints: Send + Sync + 'static {
    /// `(alive, report)` for `/healthz`.
    fn liveness(&self) -> (bool, Value);
    /// `(ready, report)` for `/readyz`.
    fn readiness(&self) -> (bool, Value);
    /// The OpenMetrics exposition for `/metrics` (run on a blocking thread).
    fn metrics(&self) -> String;
}

/// What `run`'s handlers read.
pub struct Observed {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
}

impl Endpoints for Observed {
    fn liveness(&self) -> (bool, Value) {
        self.health.liveness()
    }
    fn readiness(&self) -> (bool, Value) {
        self.health.readiness()
    }
    fn metrics(&self) -> String {
        self.metrics.render()
    }
}

/// Bind the configured address. An address the operator chose must work;
/// the default one may be taken (another tidewater on the host, a one-off
/// `run --once`): then tidewater runs without the endpoint and says so.
pub async fn bind(config: &ApiConfig) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    bind_or(config, DEFAULT_API_ADDRESS).await
}

/// [`bind`], with `default` as the address when none is configured.
pub async fn bind_or(
    config: &ApiConfig,
    default: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    if !config.enabled {
        return Ok(None);
    }
    let (address, chosen) = match config.address {
        Some(a) => (a, true),
        None => (
            default
                .parse::<SocketAddr>()
                .context("the default API address")?,
            false,
        ),
    };
    match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => {
            let bound = listener.local_addr().unwrap_or(address);
            tracing::info!(address = %bound, "api listening (/healthz, /readyz, /metrics)");
            Ok(Some(listener))
        }
        Err(e) if chosen => {
            Err(e).with_context(|| format!("api.address: cannot listen on {address}"))
        }
        Err(e) => {
            tracing::warn!(address = %address, error = %e, "cannot listen on the default api address; running without /healthz, /readyz and /metrics (set api.address to choose one)");
            Ok(None)
        }
    }
}

/// Serve until the process exits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    observed: Arc<dyn Endpoints>,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(observed);
    axum::serve(listener, app)
        .await
        .map_err(|e| anyhow::anyhow!("the HTTP API (/healthz, /readyz, /metrics) stopped: {e}"))
}

async fn healthz(State(o): State<Arc<dyn Endpoints>>) -> (StatusCode, Json<Value>) {
    respond(o.liveness())
}

async fn readyz(State(o): State<Arc<dyn Endpoints>>) -> (StatusCode, Json<Value>) {
    respond(o.readiness())
}

async fn metrics(State(o): State<Arc<dyn Endpoints>>) -> impl axum::response::IntoResponse {
    match tokio::task::spawn_blocking(move || o.metrics()).await {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot render the metrics: {e}\n"),
        ),
    }
}

fn respond((ok, body): (bool, Value)) -> (StatusCode, Json<Value>) {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
