//! Access tokens for BigQuery: a service-account key file, Application
//! Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, then the metadata
//! server, which is how GKE Workload Identity hands out tokens), or a fixed
//! token for an emulator.
//!
//! gcp-bigquery-client's own authenticators are private to it, so this
//! implements its public `Authenticator` trait over yup-oauth2, which caches
//! tokens and refreshes them before they expire.

use std::path::Path;

use async_trait::async_trait;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use yup_oauth2::authenticator::{ApplicationDefaultCredentialsTypes, DefaultAuthenticator};
use yup_oauth2::{
    ApplicationDefaultCredentialsAuthenticator, ApplicationDefaultCredentialsFlowOpts,
};

use crate::SinkError;

const SCOPES: &[&str] = &["https://www.googleapis.com/auth/bigquery"];

/// Where tokens come from. Cheap to clone: yup's authenticator shares its cache.
#[derive(Clone)]
pub enum GcpAuth {
    /// A fixed token (emulators accept any).
    Static(String),
    /// A key file or Application Default Credentials.
    Google(DefaultAuthenticator),
}

impl GcpAuth {
    /// Tokens from the key file at `credentials`, else from Application
    /// Default Credentials. Reading the key happens here; no token is
    /// fetched until the first request.
    pub async fn google(sink: &str, credentials: Option<&Path>) -> Result<Self, SinkError> {
        let config = |reason: String| SinkError::Config {
            sink: sink.to_string(),
            key: "credentials".into(),
            reason,
        };
        let auth = match credentials {
            Some(path) => {
                let key = yup_oauth2::read_service_account_key(path)
                    .await
                    .map_err(|e| {
                        config(format!(
                            "cannot read the service-account key {}: {e}",
                            path.display()
                        ))
                    })?;
                yup_oauth2::ServiceAccountAuthenticator::builder(key)
                    .build()
                    .await
                    .map_err(|e| config(format!("unusable service-account key: {e}")))?
            }
            None => {
                let opts = ApplicationDefaultCredentialsFlowOpts::default();
                match ApplicationDefaultCredentialsAuthenticator::builder(opts).await {
                    ApplicationDefaultCredentialsTypes::ServiceAccount(b) => b.build().await,
                    ApplicationDefaultCredentialsTypes::InstanceMetadata(b) => b.build().await,
                }
                .map_err(|e| {
                    config(format!(
                        "no credentials: set GOOGLE_APPLICATION_CREDENTIALS or run where the metadata server answers ({e})"
                    ))
                })?
            }
        };
        Ok(GcpAuth::Google(auth))
    }

    /// A bearer token for the next request.
    pub async fn token(&self) -> Result<String, BQError> {
        match self {
            GcpAuth::Static(token) => Ok(token.clone()),
            GcpAuth::Google(auth) => Ok(auth
                .token(SCOPES)
                .await?
                .token()
                .ok_or(BQError::NoToken)?
                .to_string()),
        }
    }
}

#[async_trait]
impl Authenticator for GcpAuth {
    async fn access_token(&self) -> Result<String, BQError> {
        self.token().await
    }
}
