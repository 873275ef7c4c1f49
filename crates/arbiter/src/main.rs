//! `arbiter`: parses arguments and calls the library.

use std::process::ExitCode;
use std::time::Duration;

use arbiter::{CliError, OfflineCheck, OfflineRouteCheck, ServeConfig};
use arbiter_core::engine::SubjectQuery;
use arbiter_server::Settings;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "arbiter", version, about = "Authorization for AI/ML platforms")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP API (creating and migrating the store on first start).
    Serve {
        #[arg(long, env = "ARBITER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(
            long,
            env = "ARBITER_DATABASE_URL",
            default_value = "sqlite://arbiter.db"
        )]
        database_url: String,
        /// Largest accepted request body, in bytes.
        #[arg(long, env = "ARBITER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
        max_body_bytes: usize,
        /// How long a check with `at_least_revision` may wait, in milliseconds.
        #[arg(long, env = "ARBITER_REVISION_WAIT_MS", default_value_t = 5000)]
        revision_wait_ms: u64,
        /// `text` or `json` logs.
        #[arg(long, env = "ARBITER_LOG_FORMAT", default_value = "text")]
        log_format: String,
        /// How often to poll the store for other replicas' changes, in milliseconds.
        #[arg(long, env = "ARBITER_POLL_INTERVAL_MS", default_value_t = 500)]
        poll_interval_ms: u64,
        /// Listen for change notifications (PostgreSQL LISTEN/NOTIFY) besides polling.
        #[arg(long, env = "ARBITER_NOTIFICATIONS", default_value_t = true, action = clap::ArgAction::Set)]
        notifications: bool,
        /// How many change-log entries compaction keeps.
        #[arg(long, env = "ARBITER_COMPACT_KEEP", default_value_t = 100_000)]
        compact_keep: u64,
        /// Gateway mode: the endpoint policy (YAML) that `/v1/gateway/*` enforces. A policy
        /// with problems stops the start.
        #[arg(long, env = "ARBITER_GATEWAY_POLICY")]
        gateway_policy: Option<String>,
    },
    /// Create or upgrade the store's schema, then exit.
    Migrate {
        #[arg(
            long,
            env = "ARBITER_DATABASE_URL",
            default_value = "sqlite://arbiter.db"
        )]
        database_url: String,
    },
    /// Import a bundle (YAML or JSON) of organizations, users, roles, bindings and resources.
    Import {
        file: String,
        #[arg(
            long,
            env = "ARBITER_DATABASE_URL",
            default_value = "sqlite://arbiter.db"
        )]
        database_url: String,
    },
    /// Export every object as a bundle on standard output.
    Export {
        #[arg(
            long,
            env = "ARBITER_DATABASE_URL",
            default_value = "sqlite://arbiter.db"
        )]
        database_url: String,
        /// Write JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Decide one check from the store, offline, and print the decision as JSON.
    Check {
        #[arg(
            long,
            env = "ARBITER_DATABASE_URL",
            default_value = "sqlite://arbiter.db"
        )]
        database_url: String,
        /// The organization the check is made in.
        #[arg(long)]
        organization: String,
        /// A user id, email or external id.
        #[arg(long, conflicts_with = "api_key")]
        user: Option<String>,
        /// An API key id.
        #[arg(long)]
        api_key: Option<String>,
        /// `resource_type:action`.
        #[arg(long, required_unless_present = "route", conflicts_with = "route")]
        permission: Option<String>,
        /// `type:id` of the resource.
        #[arg(long, required_unless_present = "route", conflicts_with = "route")]
        resource: Option<String>,
        /// Instead of --permission and --resource: a request, `METHOD /path`, decided by the
        /// route of --gateway-policy it matches.
        #[arg(long, requires = "gateway_policy")]
        route: Option<String>,
        /// The endpoint policy (YAML) for --route.
        #[arg(long, env = "ARBITER_GATEWAY_POLICY")]
        gateway_policy: Option<String>,
        #[arg(long)]
        explain: bool,
    },
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARBITER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve {
            listen,
            database_url,
            max_body_bytes,
            revision_wait_ms,
            log_format,
            poll_interval_ms,
            notifications,
            compact_keep,
            gateway_policy,
        } => {
            init_logs(log_format == "json");
            let settings = Settings {
                max_body_bytes,
                revision_wait: Duration::from_millis(revision_wait_ms),
                poll_interval: Duration::from_millis(poll_interval_ms.max(10)),
                notifications,
                compact_keep,
                ..Settings::default()
            };
            let bootstrap_key = std::env::var("ARBITER_BOOTSTRAP_KEY")
                .ok()
                .filter(|k| !k.is_empty());
            arbiter::serve(
                ServeConfig {
                    listen,
                    database_url,
                    bootstrap_key,
                    settings,
                    gateway_policy,
                },
                shutdown_signal(),
            )
            .await
        }
        Command::Migrate { database_url } => {
            let (store, _) = arbiter::open(&database_url).await?;
            println!("migrated; the store is at revision {}", store.head().await?);
            Ok(())
        }
        Command::Import { file, database_url } => {
            let text = std::fs::read_to_string(&file).map_err(|source| CliError::Io {
                path: file.clone(),
                source,
            })?;
            let (store, catalog) = arbiter::open(&database_url).await?;
            eprintln!("importing {file}...");
            let summary = arbiter::import(store, catalog, &text).await?;
            println!(
                "imported {} objects ({} unchanged); the store is at revision {}",
                summary.written, summary.unchanged, summary.revision
            );
            Ok(())
        }
        Command::Export { database_url, json } => {
            let (store, catalog) = arbiter::open(&database_url).await?;
            print!("{}", arbiter::export(store, catalog, json).await?);
            Ok(())
        }
        Command::Check {
            database_url,
            organization,
            user,
            api_key,
            permission,
            resource,
            route,
            gateway_policy,
            explain,
        } => {
            let subject = match (user, api_key) {
                (Some(u), None) => SubjectQuery::User(u),
                (None, Some(k)) => SubjectQuery::ApiKey(k),
                _ => return Err(CliError::Usage("give --user or --api-key".to_owned())),
            };
            if let (Some(request), Some(gateway_policy)) = (route, gateway_policy) {
                let (store, catalog) = arbiter::open(&database_url).await?;
                let c = OfflineRouteCheck {
                    organization,
                    subject,
                    request,
                    gateway_policy,
                    explain,
                };
                let decision = arbiter::check_route(store, catalog, &c).await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&decision).unwrap_or_default()
                );
                return Ok(());
            }
            let (Some(permission), Some(resource)) = (permission, resource) else {
                return Err(CliError::Usage(
                    "give --permission and --resource, or --route and --gateway-policy".to_owned(),
                ));
            };
            let (resource_type, resource_id) = resource
                .split_once(':')
                .ok_or_else(|| CliError::Usage("--resource is `type:id`".to_owned()))?;
            let (store, catalog) = arbiter::open(&database_url).await?;
            let c = OfflineCheck {
                organization,
                subject,
                permission,
                resource_type: resource_type.to_owned(),
                resource_id: resource_id.to_owned(),
                explain,
            };
            let decision = arbiter::check(store, catalog, &c).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&decision).unwrap_or_default()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
