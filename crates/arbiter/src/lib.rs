//! The `arbiter` binary's library: configuration, bootstrap, serve, import/export and the
//! offline check. `main` only parses arguments and calls into here.

pub mod bench;
pub mod config;
pub mod log_fields;

use std::sync::Arc;

use arbiter_core::bundle::{hash_secret, Bundle};
use arbiter_core::catalog::{Catalog, PLATFORM_ADMIN_ROLE, PREDEFINED_ROLE_PREFIX};
use arbiter_core::engine::{self, CheckRequest, ResourceQuery, SubjectQuery};
use arbiter_core::gateway::{GatewayPolicy, RouteDecision};
use arbiter_core::index::Index;
use arbiter_core::model::{ApiKey, ApiKeyKind, Node, Object, Op, RoleBinding, SubjectRef, User};
use arbiter_core::permission::Permission;
use arbiter_core::CoreError;
use arbiter_server::keys;
use arbiter_server::state::Prepared;
use arbiter_server::{AppState, Application, Settings};
use arbiter_store::{Store, StoreError};
use chrono::Utc;
use thiserror::Error;

/// The email of the platform administrator created on first start.
pub const BOOTSTRAP_EMAIL: &str = "admin@localhost";

/// What the binary can fail with.
#[derive(Debug, Error)]
pub enum CliError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    Api(String),
    #[error("cannot read or write `{path}`")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("cannot load the gateway policy `{path}`")]
    GatewayPolicy {
        path: String,
        #[source]
        source: CoreError,
    },
    #[error("invalid configuration")]
    Config(#[from] config::ConfigError),
    #[error("cannot set up TLS")]
    Tls(#[from] arbiter_server::tls::TlsError),
    #[error("the audit chain is broken at record {} (seq {seq}): {reason}", id.as_deref().unwrap_or("(none)"))]
    AuditBroken {
        seq: i64,
        id: Option<String>,
        reason: arbiter_store::ChainBreak,
    },
}

impl From<arbiter_server::ApiError> for CliError {
    fn from(e: arbiter_server::ApiError) -> Self {
        CliError::Api(e.to_string())
    }
}

/// How `arbiter serve` runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: String,
    pub database_url: String,
    pub bootstrap_key: Option<String>,
    pub settings: Settings,
    /// The endpoint policy file of gateway mode, if any.
    pub gateway_policy: Option<String>,
    /// Serve HTTPS: the PEM certificate chain and private key files.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Reads and validates a gateway policy file against the built-in catalog.
pub fn load_gateway_policy(path: &str) -> Result<GatewayPolicy, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        path: path.to_owned(),
        source,
    })?;
    GatewayPolicy::from_yaml(&text, &Catalog::builtin()?).map_err(|source| {
        CliError::GatewayPolicy {
            path: path.to_owned(),
            source,
        }
    })
}

/// Opens and migrates the store, and loads the catalog.
pub async fn open(database_url: &str) -> Result<(Arc<dyn Store>, Arc<Catalog>), CliError> {
    let store = arbiter_store::open(database_url).await?;
    let catalog = Arc::new(Catalog::builtin()?);
    Ok((store, catalog))
}

/// On a store with no users, creates the platform administrator, its binding to
/// `platform_admin` on the platform and its key. Returns the key's secret when one was
/// generated (to print once); later starts change nothing. Safe when replicas start at once:
/// the administrator's email is unique, so only one bootstrap commits.
pub async fn bootstrap(
    state: &AppState,
    bootstrap_key: Option<&str>,
) -> Result<Option<String>, CliError> {
    if let Some(k) = bootstrap_key {
        if k.len() < keys::MIN_BOOTSTRAP_KEY_LEN {
            return Err(CliError::Usage(format!(
                "ARBITER_BOOTSTRAP_KEY must hold at least {} characters",
                keys::MIN_BOOTSTRAP_KEY_LEN
            )));
        }
    }
    let generated = bootstrap_key.is_none().then(keys::generate);
    let secret = bootstrap_key
        .map(str::to_owned)
        .or_else(|| generated.clone())
        .unwrap_or_default();
    let result = state
        .write(|index: &Index| {
            if !index.users.is_empty() {
                return Ok(Prepared {
                    ops: vec![],
                    audit: vec![],
                    output: false,
                });
            }
            let now = Utc::now();
            let user = User {
                id: "usr_admin".to_owned(),
                email: BOOTSTRAP_EMAIL.to_owned(),
                name: Some("Platform administrator".to_owned()),
                external_ids: Vec::new(),
                properties: Default::default(),
                created_at: now,
                updated_at: now,
            };
            let key = ApiKey {
                id: "key_bootstrap".to_owned(),
                name: "bootstrap".to_owned(),
                kind: ApiKeyKind::User,
                user_id: user.id.clone(),
                project_id: None,
                organization_id: None,
                secret_hash: hash_secret(&secret),
                display_prefix: keys::display_prefix(&secret),
                expires_at: None,
                revoked_at: None,
                created_at: now,
                updated_at: now,
            };
            let binding = RoleBinding {
                id: "rb_bootstrap".to_owned(),
                role_id: format!("{PREDEFINED_ROLE_PREFIX}{PLATFORM_ADMIN_ROLE}"),
                subject: SubjectRef::User(user.id.clone()),
                node: Node::Platform,
                organization_id: None,
                condition: None,
                expires_at: None,
                created_at: now,
                updated_at: now,
            };
            Ok(Prepared {
                ops: vec![
                    Op::Put {
                        object: Object::User(user),
                    },
                    Op::Put {
                        object: Object::ApiKey(key),
                    },
                    Op::Put {
                        object: Object::RoleBinding(binding),
                    },
                ],
                audit: vec![arbiter_store::AuditRecord {
                    action: "platform.bootstrap".to_owned(),
                    object_kind: "user".to_owned(),
                    object_id: "usr_admin".to_owned(),
                    ..Default::default()
                }],
                output: true,
            })
        })
        .await;
    match result {
        Ok((true, _)) => Ok(generated),
        Ok((false, _)) => Ok(None),
        // Another replica bootstrapped first.
        Err(arbiter_server::ApiError::Conflict { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Builds the server, bootstraps, and serves until `shutdown` resolves.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    // A bad policy stops the start before anything is opened.
    let mut settings = config.settings.clone();
    if let Some(path) = &config.gateway_policy {
        let policy = load_gateway_policy(path)?;
        tracing::info!(path = %path, routes = policy.routes().len(), "gateway mode");
        settings.gateway = Some(Arc::new(policy));
    }
    // So do a certificate that does not load and a decision log that cannot be written.
    let tls = match &config.tls {
        Some((cert, key)) => Some(arbiter_server::tls::server_config(cert, key)?),
        None => None,
    };
    if let Some(log) = &settings.decision_log {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log.path)
            .map_err(|source| CliError::Io {
                path: log.path.display().to_string(),
                source,
            })?;
    }
    let (store, catalog) = open(&config.database_url).await?;
    let app = Application::build(&config.listen, store, catalog, settings)
        .await
        .map_err(|source| CliError::Io {
            path: config.listen.clone(),
            source,
        })?;
    if let Some(secret) = bootstrap(&app.state(), config.bootstrap_key.as_deref()).await? {
        println!("Created the platform administrator {BOOTSTRAP_EMAIL}. Its API key, shown once:\n{secret}");
    }
    let addr = app.local_addr().map_err(|source| CliError::Io {
        path: config.listen.clone(),
        source,
    })?;
    tracing::info!(%addr, database = %redact(&config.database_url), "arbiter listening");
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("arbiter listening on {scheme}://{addr}");
    app.serve(tls, shutdown)
        .await
        .map_err(|source| CliError::Io {
            path: config.listen,
            source,
        })
}

/// Walks the audit chain of the store (see [`arbiter_store::verify_audit_chain`]): the number
/// of records verified and the newest hash, or [`CliError::AuditBroken`] naming the first record
/// that fails and why.
pub async fn audit_verify(store: &dyn Store) -> Result<(u64, u64, String), CliError> {
    match arbiter_store::verify_audit_chain(store).await? {
        arbiter_store::ChainVerdict::Verified {
            records,
            unchained,
            head,
        } => Ok((records, unchained, head)),
        arbiter_store::ChainVerdict::Broken { seq, id, reason } => {
            Err(CliError::AuditBroken { seq, id, reason })
        }
    }
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
pub struct ImportSummary {
    pub written: usize,
    pub unchanged: usize,
    pub revision: u64,
}

fn without_times(object: &Object) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("created_at");
        map.remove("updated_at");
    }
    value
}

/// Imports a bundle (YAML or JSON) in one revision. Objects are put by id; one that is already
/// stored as the bundle says is left alone, so a second import writes nothing.
pub async fn import(
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    text: &str,
) -> Result<ImportSummary, CliError> {
    let bundle = Bundle::from_text(text)?;
    let state = AppState::load(store, catalog.clone(), Settings::default()).await?;
    let ((written, unchanged), revision) = state
        .write(|index| {
            let objects = bundle.to_objects(&catalog, index, Utc::now())?;
            let existing: std::collections::HashMap<_, _> =
                index.objects().into_iter().map(|o| (o.key(), o)).collect();
            let mut ops = Vec::new();
            let mut unchanged = 0;
            for object in objects {
                match existing.get(&object.key()) {
                    Some(old) if without_times(old) == without_times(&object) => unchanged += 1,
                    _ => ops.push(Op::Put { object }),
                }
            }
            let written = ops.len();
            Ok(Prepared {
                audit: vec![arbiter_store::AuditRecord {
                    action: "bundle.import".to_owned(),
                    object_kind: "bundle".to_owned(),
                    object_id: format!("{written} objects"),
                    ..Default::default()
                }],
                ops,
                output: (written, unchanged),
            })
        })
        .await
        .map_err(|e| match e {
            arbiter_server::ApiError::Core(c) => CliError::Core(c),
            other => CliError::Api(other.to_string()),
        })?;
    Ok(ImportSummary {
        written,
        unchanged,
        revision,
    })
}

/// Exports every object as a bundle: YAML, or JSON when `json`.
pub async fn export(
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    json: bool,
) -> Result<String, CliError> {
    let index = arbiter_store::load_index(store.as_ref(), catalog).await?;
    let bundle = Bundle::from_objects(&index.objects());
    let text = if json {
        serde_json::to_string_pretty(&bundle).map_err(|e| CliError::Api(e.to_string()))?
    } else {
        serde_yaml::to_string(&bundle).map_err(|e| CliError::Api(e.to_string()))?
    };
    Ok(text)
}

/// An offline check against the store's current state.
pub struct OfflineCheck {
    pub organization: String,
    pub subject: SubjectQuery,
    pub permission: String,
    pub resource_type: String,
    pub resource_id: String,
    pub explain: bool,
}

/// Decides a check from the store, as a server would.
pub async fn check(
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    c: &OfflineCheck,
) -> Result<engine::Decision, CliError> {
    let permission = Permission::parse(&c.permission)?;
    let index = arbiter_store::load_index(store.as_ref(), catalog).await?;
    index.validate_permission(Some(&c.organization), &permission)?;
    let resource = ResourceQuery {
        resource_type: c.resource_type.clone(),
        id: c.resource_id.clone(),
        properties: Default::default(),
    };
    Ok(engine::check(
        &index,
        &CheckRequest {
            organization_id: Some(&c.organization),
            subject: &c.subject,
            subject_properties: None,
            permission: &permission,
            resource: &resource,
            action_properties: None,
            context: None,
            now: Utc::now(),
            explain: c.explain,
        },
    ))
}

/// An offline decision of a gateway route: may the subject make `METHOD /path` under a policy?
pub struct OfflineRouteCheck {
    pub organization: String,
    pub subject: SubjectQuery,
    /// `METHOD /path`, as a proxy would forward it (`GET /models/m1?x=1`).
    pub request: String,
    /// The policy file.
    pub gateway_policy: String,
    pub explain: bool,
}

/// Decides a gateway route from the store, as `/v1/gateway/authorize` would (after the key is
/// authenticated). A request that matches no route is denied with `route: null`.
pub async fn check_route(
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    c: &OfflineRouteCheck,
) -> Result<serde_json::Value, CliError> {
    let policy = load_gateway_policy(&c.gateway_policy)?;
    let parts: Vec<&str> = c.request.split_whitespace().collect();
    let [method, uri] = parts.as_slice() else {
        return Err(CliError::Usage(
            "--route is `METHOD /path`, such as `GET /models/m1`".to_owned(),
        ));
    };
    let matched = policy.lookup(method, uri)?;
    let index = arbiter_store::load_index(store.as_ref(), catalog).await?;
    if !index.organizations.contains_key(&c.organization) {
        return Err(CliError::Usage(format!(
            "organization `{}` does not exist",
            c.organization
        )));
    }
    let Some(matched) = matched else {
        return Ok(serde_json::json!({
            "allowed": false,
            "revision": index.revision.to_string(),
            "route": null,
            "reason": format!("`{method} {uri}` is not a route of the gateway policy"),
        }));
    };
    let decision: RouteDecision = arbiter_core::gateway::decide(
        &index,
        &c.organization,
        &c.subject,
        &matched,
        Utc::now(),
        c.explain,
    );
    let mut value = serde_json::to_value(&decision).map_err(|e| CliError::Api(e.to_string()))?;
    value["revision"] = serde_json::Value::String(decision.revision.to_string());
    Ok(value)
}

/// Logs to standard error (text or JSON, filtered by `ARBITER_LOG`, `info` by default) and, with
/// an OTLP endpoint, every request's span exported over OTLP/HTTP (protobuf) in batches. Answers
/// the tracer provider, which the caller shuts down (flushing what is pending) at exit.
pub fn init_telemetry(
    json: bool,
    otlp_endpoint: Option<&str>,
) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, CliError> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;

    let filter = tracing_subscriber::EnvFilter::try_from_env("ARBITER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a log file or collector gets plain text (escape codes there
    // are noise, and formatting them cost a few per cent of a busy server's time).
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `ARBITER_LOG` filters what is logged; traces keep every `info` span whatever the logs show.
    let fmt = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.fmt_fields(log_fields::PlainFields::default())
            .with_filter(filter)
            .boxed()
    };
    let provider = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| {
                    CliError::Usage(format!("cannot export traces to `{endpoint}`: {e}"))
                })?;
            Some(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name("arbiter")
                            .build(),
                    )
                    .build(),
            )
        }
        None => None,
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("arbiter"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    tracing_subscriber::registry().with(fmt).with(otel).init();
    Ok(provider)
}
