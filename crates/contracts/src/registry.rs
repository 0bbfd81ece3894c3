//! Where schema ids come from.
//!
//! - [`Registry::Pinned`]: no registry server; each subject's id is fixed in configuration
//!   (defaults: 1001..1008 in [`SchemaKind::ALL`] order), and an id read from the wire must be
//!   one of them.
//! - [`Registry::Rest`]: a Confluent-compatible Schema Registry (HTTP basic authentication and
//!   a CA of its own when configured). Writers register their schema under `<topic>-value`
//!   (TopicNameStrategy, `POST /subjects/{subject}/versions`: the id of an identical schema
//!   when it is there) once; readers resolve ids they have not seen with
//!   `GET /schemas/ids/{id}`. Both are cached for the life of the process: an id never changes
//!   its schema. `fitstream schemas register` registers every schema and sets each subject's
//!   compatibility level; `fitstream schemas check` checks the code's schemas against them.

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
    /// Base URL of a Confluent-compatible registry (`https://host:8081`). Empty: pinned ids.
    #[serde(default)]
    pub url: Option<String>,
    /// HTTP basic authentication: the user.
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP basic authentication: the password.
    #[serde(default)]
    pub password: Option<String>,
    /// A PEM file of the CA that signed the registry's certificate (beside the system's).
    #[serde(default)]
    pub ca_location: Option<String>,
    /// Pinned ids by subject (`<topic>-value`), overriding the defaults per schema kind.
    #[serde(default)]
    pub pinned: BTreeMap<String, u32>,
    /// Services on Kafka refuse to start without a registry unless this says the pinned ids
    /// are meant: records then carry fitstream's own ids (1001..1008, `docs/consumers.md`),
    /// which a deserializer that looks ids up in a registry would misread.
    #[serde(default)]
    pub pinned_ids: bool,
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
    Rest(Rest),
}

/// A Confluent-compatible registry server.
#[derive(Clone, Debug)]
pub struct Rest {
    /// Base URL without trailing slash.
    pub url: String,
    config: RegistryConfig,
    client: reqwest::Client,
}

/// Schema compatibility levels of a subject (Confluent's names).
pub const COMPATIBILITY_LEVELS: [&str; 7] = [
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
];

impl Rest {
    fn new(url: &str, config: &RegistryConfig) -> Rest {
        Rest {
            url: url.trim_end_matches('/').to_owned(),
            config: config.clone(),
            client: client(config),
        }
    }

    /// A request with the registry's media type and credentials.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .client
            .request(method, format!("{}{path}", self.url))
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            );
        match &self.config.username {
            Some(user) => r.basic_auth(user, self.config.password.as_deref()),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response, RegistryError> {
        r.send().await.map_err(|e| {
            // The source chain says why (refused, TLS, timeout); reqwest's own text does not.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            RegistryError::Unreachable(format!("{}: {why}", self.url))
        })
    }
}

/// The HTTP client of a registry: its CA beside the system's, a 10 s timeout.
fn client(config: &RegistryConfig) -> reqwest::Client {
    let mut b = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10));
    if let Some(path) = &config.ca_location {
        match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string()))
        {
            Ok(ca) => b = b.add_root_certificate(ca),
            // The TLS handshake then fails, naming the certificate; say why here too.
            Err(e) => tracing::error!("registry.ca_location {path}: {e}"),
        }
    }
    b.build().unwrap_or_default()
}

/// Runs a registry call to its end from synchronous code (a codec miss in the Kafka driver,
/// `tail`, `produce`), on a thread of its own with its own runtime and client: it may be
/// called from inside an async runtime or outside one.
fn blocking<T: Send + 'static>(
    rest: &Rest,
    call: impl FnOnce(Rest) -> std::pin::Pin<Box<dyn Future<Output = Result<T, RegistryError>> + Send>>
    + Send
    + 'static,
) -> Result<T, RegistryError> {
    // A client of the thread's own runtime: a pooled connection of another runtime may be dead.
    let fresh = Rest::new(&rest.url, &rest.config);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Unreachable(e.to_string()))?;
        runtime.block_on(call(fresh))
    })
    .join()
    .map_err(|_| RegistryError::Unreachable("the registry call panicked".into()))?
}

#[derive(Deserialize)]
struct CompatibleResponse {
    is_compatible: bool,
}

#[derive(Deserialize)]
struct LevelResponse {
    #[serde(alias = "compatibilityLevel")]
    compatibility: String,
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
            Some(url) if !url.is_empty() => Registry::Rest(Rest::new(url, config)),
            _ => Registry::Pinned(config.pinned.clone()),
        }
    }

    /// The id under which `kind`'s schema is written to `subject`, registering it if needed.
    pub async fn register(&self, subject: &str, kind: SchemaKind) -> Result<u32, RegistryError> {
        match self {
            Registry::Pinned(pinned) => Ok(pinned_id(pinned, subject, kind)),
            Registry::Rest(rest) => {
                let response = rest
                    .send(
                        rest.request(
                            reqwest::Method::POST,
                            &format!("/subjects/{subject}/versions"),
                        )
                        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                        .json(&schema_body(kind)),
                    )
                    .await?;
                Ok(read_json::<IdResponse>(response).await?.id)
            }
        }
    }

    /// [`Registry::register`] from synchronous code.
    pub fn register_blocking(&self, subject: &str, kind: SchemaKind) -> Result<u32, RegistryError> {
        match self {
            Registry::Pinned(pinned) => Ok(pinned_id(pinned, subject, kind)),
            Registry::Rest(rest) => {
                let subject = subject.to_owned();
                blocking(rest, move |r| {
                    Box::pin(async move { Registry::Rest(r).register(&subject, kind).await })
                })
            }
        }
    }

    /// [`Registry::schema_text`] from synchronous code.
    pub fn schema_text_blocking(&self, id: u32) -> Result<Option<String>, RegistryError> {
        match self {
            Registry::Pinned(_) => Ok(pinned_text(id)),
            Registry::Rest(rest) => blocking(rest, move |r| {
                Box::pin(async move { Registry::Rest(r).schema_text(id).await })
            }),
        }
    }

    /// Sets a subject's compatibility level (one of [`COMPATIBILITY_LEVELS`]).
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let Registry::Rest(rest) = self else {
            return Ok(());
        };
        let response = rest
            .send(
                rest.request(reqwest::Method::PUT, &format!("/config/{subject}"))
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .json(&serde_json::json!({ "compatibility": level })),
            )
            .await?;
        read_json::<LevelResponse>(response).await.map(|_| ())
    }

    /// A subject's compatibility level as the registry reports it.
    pub async fn compatibility(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        let Registry::Rest(rest) = self else {
            return Ok(None);
        };
        let response = rest
            .send(rest.request(reqwest::Method::GET, &format!("/config/{subject}")))
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(
            read_json::<LevelResponse>(response).await?.compatibility,
        ))
    }

    /// Whether `kind`'s schema may be registered under `subject` by the subject's level
    /// (`None`: nothing registered under it yet).
    pub async fn is_compatible(
        &self,
        subject: &str,
        kind: SchemaKind,
    ) -> Result<Option<bool>, RegistryError> {
        let Registry::Rest(rest) = self else {
            return Ok(Some(true));
        };
        let response = rest
            .send(
                rest.request(
                    reqwest::Method::POST,
                    &format!("/compatibility/subjects/{subject}/versions/latest"),
                )
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .json(&schema_body(kind)),
            )
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(
            read_json::<CompatibleResponse>(response)
                .await?
                .is_compatible,
        ))
    }

    /// The schema text of an id, for a reader that met it on the wire.
    pub async fn schema_text(&self, id: u32) -> Result<Option<String>, RegistryError> {
        match self {
            Registry::Pinned(_) => Ok(pinned_text(id)),
            Registry::Rest(rest) => {
                let response = rest
                    .send(rest.request(reqwest::Method::GET, &format!("/schemas/ids/{id}")))
                    .await?;
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
            Registry::Rest(_) => None,
        }
    }

    /// Whether ids are pinned (no registry server).
    pub fn is_pinned(&self) -> bool {
        matches!(self, Registry::Pinned(_))
    }
}

/// The body that registers or checks `kind`'s schema: the full schema (logical types and
/// docs included), compacted; the Parsing Canonical Form would drop logical types such as
/// decimal.
fn schema_body(kind: SchemaKind) -> serde_json::Value {
    let compact = serde_json::from_str::<serde_json::Value>(kind.text())
        .map(|v| v.to_string())
        .unwrap_or_else(|_| kind.text().to_owned());
    serde_json::json!({ "schema": compact })
}

fn pinned_id(pinned: &BTreeMap<String, u32>, subject: &str, kind: SchemaKind) -> u32 {
    pinned
        .get(subject)
        .copied()
        .unwrap_or_else(|| default_pinned_id(kind))
}

fn pinned_text(id: u32) -> Option<String> {
    SchemaKind::ALL
        .into_iter()
        .find(|k| default_pinned_id(*k) == id)
        .map(|k| k.text().to_owned())
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
        let body = match (status.as_u16(), body.is_empty()) {
            (401, _) => {
                format!("{body} (not authorized: check registry.username and registry.password)")
            }
            (_, true) => status.canonical_reason().unwrap_or("").to_owned(),
            _ => body,
        };
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
