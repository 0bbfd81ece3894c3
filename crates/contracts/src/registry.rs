//! Where schema ids come from.
//!
//! - [`Registry::Pinned`]: no registry server; each subject's id is fixed in configuration
//!   (defaults: 1001..1008 in [`SchemaKind::ALL`] order), and an id read from the wire must be
//!   one of them.
//! - [`Registry::Rest`]: a Confluent-compatible Schema Registry. Writers register their schema
//!   under `<topic>-value` (TopicNameStrategy, `POST /subjects/{subject}/versions`) once;
//!   readers resolve unknown ids with `GET /schemas/ids/{id}`. Both are cached for the life of
//!   the process: an id never changes its schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schemas::SchemaKind;

/// Errors talking to a schema registry. All are retryable except a rejected schema.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The HTTP call failed (connection, timeout).
    #[error("schema registry unreachable: {0}")]
    Unreachable(String),
    /// The registry answered with an error status.
    #[error("schema registry answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// In pinned mode, no id is configured for the subject.
    #[error("no schema id pinned for subject `{0}`")]
    NotPinned(String),
}

/// Registry configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL of a Confluent-compatible registry (`http://host:8081`). Empty: pinned ids.
    #[serde(default)]
    pub url: Option<String>,
    /// Pinned ids by subject (`<topic>-value`), overriding the defaults per schema kind.
    #[serde(default)]
    pub pinned: BTreeMap<String, u32>,
}

/// The default pinned id of a schema kind.
pub fn default_pinned_id(kind: SchemaKind) -> u32 {
    1001 + kind as u32
}

/// A source of schema ids.
#[derive(Clone, Debug)]
pub enum Registry {
    /// Ids fixed in configuration.
    Pinned(BTreeMap<String, u32>),
    /// A registry's REST API.
    Rest {
        /// Base URL without trailing slash.
        url: String,
        /// HTTP client.
        client: reqwest::Client,
    },
}

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
}

impl Registry {
    /// Builds a registry from configuration.
    pub fn from_config(config: &RegistryConfig) -> Registry {
        match &config.url {
            Some(url) if !url.is_empty() => Registry::Rest {
                url: url.trim_end_matches('/').to_owned(),
                client: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .unwrap_or_default(),
            },
            _ => Registry::Pinned(config.pinned.clone()),
        }
    }

    /// The id under which `kind`'s schema is written to `subject`, registering it if needed.
    pub async fn register(&self, subject: &str, kind: SchemaKind) -> Result<u32, RegistryError> {
        match self {
            Registry::Pinned(pinned) => Ok(pinned
                .get(subject)
                .copied()
                .unwrap_or_else(|| default_pinned_id(kind))),
            Registry::Rest { url, client } => {
                // The full schema (logical types and docs included), compacted; the Parsing Canonical
                // Form would drop logical types such as decimal.
                let compact = serde_json::from_str::<serde_json::Value>(kind.text())
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| kind.text().to_owned());
                let body = serde_json::json!({ "schema": compact });
                let response = client
                    .post(format!("{url}/subjects/{subject}/versions"))
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| RegistryError::Unreachable(e.to_string()))?;
                Ok(read_json::<IdResponse>(response).await?.id)
            }
        }
    }

    /// The schema text of an id, for a reader that met it on the wire.
    pub async fn schema_text(&self, id: u32) -> Result<Option<String>, RegistryError> {
        match self {
            Registry::Pinned(_) => Ok(SchemaKind::ALL
                .into_iter()
                .find(|k| default_pinned_id(*k) == id)
                .map(|k| k.text().to_owned())),
            Registry::Rest { url, client } => {
                let response = client
                    .get(format!("{url}/schemas/ids/{id}"))
                    .send()
                    .await
                    .map_err(|e| RegistryError::Unreachable(e.to_string()))?;
                if response.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                Ok(Some(read_json::<SchemaResponse>(response).await?.schema))
            }
        }
    }

    /// In pinned mode, the schema kind that id `id` stands for on `subject`, whose readers
    /// expect `reader`: the subject's configured id, or the default id of any kind.
    pub fn pinned_kind(&self, subject: &str, reader: SchemaKind, id: u32) -> Option<SchemaKind> {
        match self {
            Registry::Pinned(pinned) if pinned.get(subject) == Some(&id) => Some(reader),
            Registry::Pinned(_) => SchemaKind::ALL
                .into_iter()
                .find(|k| default_pinned_id(*k) == id),
            Registry::Rest { .. } => None,
        }
    }

    /// Whether ids are pinned (no registry server).
    pub fn is_pinned(&self) -> bool {
        matches!(self, Registry::Pinned(_))
    }
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    response: reqwest::Response,
) -> Result<T, RegistryError> {
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| RegistryError::Unreachable(e.to_string()))?;
    if !status.is_success() {
        return Err(RegistryError::Status {
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_str(&body).map_err(|e| RegistryError::Status {
        status: status.as_u16(),
        body: e.to_string(),
    })
}
