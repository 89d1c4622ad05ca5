//! The daemon's HTTP endpoints: `/metrics` (Prometheus text format), `/healthz`
//! (the process answers) and `/readyz` (the store answers and a config is loaded).
//!
//! `/metrics` reads only in-memory values: a scrape never waits for the store, so
//! a long scan writing findings does not slow Prometheus down.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use tokio::sync::watch;

use super::{Loaded, Shared};
use tillsyn_app::metrics::CONTENT_TYPE;
use tillsyn_app::runner::with_store;

#[derive(Clone)]
struct Endpoints {
    shared: Arc<Shared>,
    config: watch::Receiver<Arc<Loaded>>,
}

/// Serve the endpoints on `listener` until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    config: watch::Receiver<Arc<Loaded>>,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Endpoints { shared, config });
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(error = %error, "The HTTP server stopped.");
    }
}

async fn metrics(State(endpoints): State<Endpoints>) -> Response {
    match endpoints.shared.metrics.render(Utc::now()) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "Could not render the metrics.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics could not be rendered\n",
            )
                .into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoints): State<Endpoints>) -> Response {
    let sources = endpoints.config.borrow().sources.len();
    match with_store(&endpoints.shared.store, |store| store.schema_version()).await {
        Ok(_) => (
            StatusCode::OK,
            format!("ready: store open, {sources} sources scheduled\n"),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "Readiness check: the store does not answer.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store does not answer\n",
            )
                .into_response()
        }
    }
}
