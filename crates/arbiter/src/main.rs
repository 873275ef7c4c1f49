//! `arbiter`: parses arguments and calls the library.

use std::process::ExitCode;
use std::time::Duration;

use arbiter::{CliError, OfflineCheck, OfflineRouteCheck};
use arbiter_core::engine::SubjectQuery;
use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: a request allocates and frees many small
/// buffers, where glibc's allocator spent about a sixth of the server's time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "arbiter", version, about = "Authorization for AI/ML platforms")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP API (creating and migrating the store on first start).
    ///
    /// Each setting comes from the compiled-in default, then the --config file, then its
    /// `ARBITER_*` variable, then its flag (see `arbiter serve --print-config`).
    Serve {
        /// A configuration file (YAML); its keys are the flags' names with `_` for `-`.
        #[arg(long, env = "ARBITER_CONFIG")]
        config: Option<std::path::PathBuf>,
        /// Print the effective configuration (secrets hidden) and exit.
        #[arg(long)]
        print_config: bool,
        #[command(flatten)]
        options: arbiter::config::ServeOptions,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Load a running server over HTTP and report throughput and latency percentiles.
    Bench {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The bearer key to call with.
        #[arg(long, env = "ARBITER_BENCH_KEY")]
        key: String,
        #[arg(long)]
        organization: Option<String>,
        #[arg(long, value_enum, default_value = "check")]
        target: arbiter::bench::Target,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Seconds.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// The user checked.
        #[arg(long, default_value = "admin@localhost")]
        subject: String,
        #[arg(long, default_value = "model:read")]
        permission: String,
        #[arg(long, default_value = "model:m1")]
        resource: String,
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the audit log's hash chain: exit 0 when every record verifies, 1 naming the first
    /// record that does not and why.
    Verify {
        #[arg(
            long,
            env = "ARBITER_DATABASE_URL",
            default_value = "sqlite://arbiter.db"
        )]
        database_url: String,
    },
}

/// Resolves on SIGTERM or Ctrl-C. The SIGTERM listener is registered when this is called, not
/// when the future is first polled: the server polls it on a task of its own, which may start
/// after the first requests are answered, and a signal sent before then would be missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            match terminate {
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
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve {
            config,
            print_config,
            options,
        } => {
            let config = arbiter::config::Config::load(config.as_deref(), options)?;
            if print_config {
                print!("{}", config.printable());
                return Ok(());
            }
            let traces = arbiter::init_telemetry(
                config.log_format == arbiter::config::LogFormat::Json,
                config.otlp_endpoint.as_deref(),
            )?;
            let served = arbiter::serve(config.serve_config(), shutdown_signal()).await;
            if let Some(provider) = traces {
                // Flushes the spans still in the batch; blocking, so off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            }
            served
        }
        Command::Audit {
            command: AuditCommand::Verify { database_url },
        } => {
            let (store, _) = arbiter::open(&database_url).await?;
            let (records, unchained, head) = arbiter::audit_verify(store.as_ref()).await?;
            if unchained > 0 {
                println!("{unchained} records predate the chain and are not covered");
            }
            println!("{records} records verified; head {head}");
            Ok(())
        }
        Command::Bench {
            url,
            key,
            organization,
            target,
            concurrency,
            duration,
            batch_size,
            subject,
            permission,
            resource,
        } => {
            let config = arbiter::bench::BenchConfig {
                url,
                key,
                organization,
                target,
                concurrency,
                duration: Duration::from_secs(duration.max(1)),
                batch_size,
                subject,
                permission,
                resource,
            };
            let report = arbiter::bench::run(config).await?;
            println!("{}", report.render());
            Ok(())
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
        Err(CliError::Config(e)) => {
            let mut message = e.to_string();
            if let Some(source) = std::error::Error::source(&e) {
                message.push_str(&format!(": {source}"));
            }
            eprintln!("error: invalid configuration: {message}");
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
