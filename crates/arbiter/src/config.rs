//! The configuration of `arbiter serve`, in four layers, each over the one before:
//!
//! 1. compiled-in defaults ([`Config::default`]);
//! 2. an optional YAML file (`--config FILE` or `ARBITER_CONFIG`), whose keys are the flags'
//!    names with `_` for `-` (unknown keys are refused);
//! 3. `ARBITER_*` environment variables (`ARBITER_MAX_CONCURRENCY` for `--max-concurrency`);
//! 4. flags.
//!
//! Layers 3 and 4 are read by clap into [`ServeOptions`] (a flag wins over its variable); the
//! file is read into the same struct, so that the three can never disagree on a name. Secrets
//! (`ARBITER_BOOTSTRAP_KEY`, the database password) are never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arbiter_server::decision_log::DecisionLogSettings;
use arbiter_server::limits::RateLimit;
use arbiter_server::Settings;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{redact, ServeConfig};

/// The log format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the request's span (`request_id`, `method`, `route`).
    Json,
}

/// The settings of `arbiter serve` that may come from the file, the environment or flags; `None`
/// leaves the layer below in force.
#[derive(Clone, Debug, Default, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeOptions {
    /// The address to listen on (port 0: any free port).
    #[arg(long, env = "ARBITER_LISTEN")]
    pub listen: Option<String>,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`.
    #[arg(long, env = "ARBITER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Largest accepted request body, in bytes (larger: 413).
    #[arg(long, env = "ARBITER_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// How long a check with `at_least_revision` may wait, in milliseconds.
    #[arg(long, env = "ARBITER_REVISION_WAIT_MS")]
    pub revision_wait_ms: Option<u64>,
    /// `text` or `json` logs.
    #[arg(long, env = "ARBITER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// How often to poll the store for other replicas' changes, in milliseconds.
    #[arg(long, env = "ARBITER_POLL_INTERVAL_MS")]
    pub poll_interval_ms: Option<u64>,
    /// Listen for change notifications (PostgreSQL LISTEN/NOTIFY) besides polling.
    #[arg(long, env = "ARBITER_NOTIFICATIONS", action = clap::ArgAction::Set)]
    pub notifications: Option<bool>,
    /// How many change-log entries compaction keeps.
    #[arg(long, env = "ARBITER_COMPACT_KEEP")]
    pub compact_keep: Option<u64>,
    /// The longest a request may take, in milliseconds (past it: 503 `request_timeout`).
    #[arg(long, env = "ARBITER_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// The most requests served at once (more: 503 `overloaded`, at once).
    #[arg(long, env = "ARBITER_MAX_CONCURRENCY")]
    pub max_concurrency: Option<usize>,
    /// Requests per second allowed to each API key (0: no rate limit; more: 429 `rate_limited`).
    #[arg(long, env = "ARBITER_RATE_LIMIT_PER_SECOND")]
    pub rate_limit_per_second: Option<f64>,
    /// Requests a key may send at once above its rate (0: the rate, rounded up).
    #[arg(long, env = "ARBITER_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// A PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "ARBITER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "ARBITER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Write a sample of decisions to this file, as JSON lines.
    #[arg(long, env = "ARBITER_DECISION_LOG")]
    pub decision_log: Option<PathBuf>,
    /// The fraction of decisions the decision log writes, from 0 to 1.
    #[arg(long, env = "ARBITER_DECISION_LOG_SAMPLE")]
    pub decision_log_sample: Option<f64>,
    /// Gateway mode: the endpoint policy (YAML) that `/v1/gateway/*` enforces. A policy with
    /// problems stops the start.
    #[arg(long, env = "ARBITER_GATEWAY_POLICY")]
    pub gateway_policy: Option<String>,
    /// Export traces (every request's span) over OTLP/HTTP to this URL, e.g.
    /// `http://collector:4318/v1/traces`. Off when unset.
    #[arg(long, env = "ARBITER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The platform administrator's key on first start (file only; `ARBITER_BOOTSTRAP_KEY`
    /// overrides it). Never printed.
    #[arg(skip)]
    pub bootstrap_key: Option<String>,
}

/// Takes every field of `over` that is set, else the field of `under`.
macro_rules! overlay {
    ($under:expr, $over:expr, $($field:ident),* $(,)?) => {{
        let (under, over) = ($under, $over);
        ServeOptions { $($field: over.$field.or(under.$field)),* }
    }};
}

impl ServeOptions {
    /// These options over `under`.
    fn over(self, under: ServeOptions) -> ServeOptions {
        overlay!(
            under,
            self,
            listen,
            database_url,
            max_body_bytes,
            revision_wait_ms,
            log_format,
            poll_interval_ms,
            notifications,
            compact_keep,
            request_timeout_ms,
            max_concurrency,
            rate_limit_per_second,
            rate_limit_burst,
            tls_cert,
            tls_key,
            decision_log,
            decision_log_sample,
            gateway_policy,
            otlp_endpoint,
            bootstrap_key,
        )
    }
}

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    pub max_body_bytes: usize,
    pub revision_wait_ms: u64,
    pub log_format: LogFormat,
    pub poll_interval_ms: u64,
    pub notifications: bool,
    pub compact_keep: u64,
    pub request_timeout_ms: u64,
    pub max_concurrency: usize,
    pub rate_limit_per_second: f64,
    pub rate_limit_burst: u32,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub decision_log: Option<PathBuf>,
    pub decision_log_sample: f64,
    pub gateway_policy: Option<String>,
    pub otlp_endpoint: Option<String>,
    #[serde(skip)]
    pub bootstrap_key: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let settings = Settings::default();
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            database_url: "sqlite://arbiter.db".to_owned(),
            max_body_bytes: settings.max_body_bytes,
            revision_wait_ms: millis(settings.revision_wait),
            log_format: LogFormat::Text,
            poll_interval_ms: millis(settings.poll_interval),
            notifications: settings.notifications,
            compact_keep: settings.compact_keep,
            request_timeout_ms: millis(settings.request_timeout),
            max_concurrency: settings.max_concurrency,
            rate_limit_per_second: 0.0,
            rate_limit_burst: 0,
            tls_cert: None,
            tls_key: None,
            decision_log: None,
            decision_log_sample: 1.0,
            gateway_policy: None,
            otlp_endpoint: None,
            bootstrap_key: None,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What is wrong with a configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the configuration file `{path}` does not parse")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("`{field}` {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        problem: problem.into(),
    }
}

impl Config {
    /// The configuration of the layers: defaults, then `file`, then `env_and_flags` (as clap read
    /// them: a flag over its variable), then `ARBITER_BOOTSTRAP_KEY` if set. Validated.
    pub fn load(file: Option<&Path>, env_and_flags: ServeOptions) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => read_file(path)?,
            None => ServeOptions::default(),
        };
        let mut options = env_and_flags.over(from_file);
        if let Some(key) = std::env::var("ARBITER_BOOTSTRAP_KEY")
            .ok()
            .filter(|k| !k.is_empty())
        {
            options.bootstrap_key = Some(key);
        }
        let config = Config::default().with(options);
        config.validate()?;
        Ok(config)
    }

    /// These settings with every option that is set replacing its value.
    pub fn with(self, o: ServeOptions) -> Config {
        Config {
            listen: o.listen.unwrap_or(self.listen),
            database_url: o.database_url.unwrap_or(self.database_url),
            max_body_bytes: o.max_body_bytes.unwrap_or(self.max_body_bytes),
            revision_wait_ms: o.revision_wait_ms.unwrap_or(self.revision_wait_ms),
            log_format: o.log_format.unwrap_or(self.log_format),
            poll_interval_ms: o.poll_interval_ms.unwrap_or(self.poll_interval_ms),
            notifications: o.notifications.unwrap_or(self.notifications),
            compact_keep: o.compact_keep.unwrap_or(self.compact_keep),
            request_timeout_ms: o.request_timeout_ms.unwrap_or(self.request_timeout_ms),
            max_concurrency: o.max_concurrency.unwrap_or(self.max_concurrency),
            rate_limit_per_second: o
                .rate_limit_per_second
                .unwrap_or(self.rate_limit_per_second),
            rate_limit_burst: o.rate_limit_burst.unwrap_or(self.rate_limit_burst),
            tls_cert: o.tls_cert.or(self.tls_cert),
            tls_key: o.tls_key.or(self.tls_key),
            decision_log: o.decision_log.or(self.decision_log),
            decision_log_sample: o.decision_log_sample.unwrap_or(self.decision_log_sample),
            gateway_policy: o.gateway_policy.or(self.gateway_policy),
            otlp_endpoint: o.otlp_endpoint.or(self.otlp_endpoint),
            bootstrap_key: o.bootstrap_key.or(self.bootstrap_key),
        }
    }

    /// Checks every value; the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.trim().is_empty() || !self.listen.contains(':') {
            return Err(invalid("listen", "must be HOST:PORT"));
        }
        if !["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|scheme| self.database_url.starts_with(scheme))
        {
            return Err(invalid(
                "database_url",
                "must be sqlite://PATH or postgres://...",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be at least 1"));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("request_timeout_ms", "must be at least 1"));
        }
        if self.max_concurrency == 0 {
            return Err(invalid("max_concurrency", "must be at least 1"));
        }
        if !self.rate_limit_per_second.is_finite() || self.rate_limit_per_second < 0.0 {
            return Err(invalid(
                "rate_limit_per_second",
                "must be 0 (off) or a positive number",
            ));
        }
        if !(0.0..=1.0).contains(&self.decision_log_sample) {
            return Err(invalid("decision_log_sample", "must be between 0 and 1"));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid("tls_cert", "and `tls_key` must be given together"));
        }
        if let Some(key) = &self.bootstrap_key {
            if key.len() < arbiter_server::keys::MIN_BOOTSTRAP_KEY_LEN {
                return Err(invalid(
                    "bootstrap_key",
                    format!(
                        "(ARBITER_BOOTSTRAP_KEY) must hold at least {} characters",
                        arbiter_server::keys::MIN_BOOTSTRAP_KEY_LEN
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The rate limit, when it is on: the burst defaults to the rate, rounded up.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        (self.rate_limit_per_second > 0.0).then(|| RateLimit {
            per_second: self.rate_limit_per_second,
            burst: if self.rate_limit_burst == 0 {
                self.rate_limit_per_second.ceil().max(1.0)
            } else {
                f64::from(self.rate_limit_burst)
            },
        })
    }

    /// The server's settings.
    pub fn settings(&self) -> Settings {
        Settings {
            max_body_bytes: self.max_body_bytes,
            revision_wait: Duration::from_millis(self.revision_wait_ms),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(10)),
            notifications: self.notifications,
            compact_keep: self.compact_keep,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_concurrency: self.max_concurrency,
            rate_limit: self.rate_limit(),
            decision_log: self.decision_log.as_ref().map(|path| DecisionLogSettings {
                path: path.clone(),
                sample: self.decision_log_sample,
            }),
            ..Settings::default()
        }
    }

    /// What `arbiter serve` runs with.
    pub fn serve_config(&self) -> ServeConfig {
        ServeConfig {
            listen: self.listen.clone(),
            database_url: self.database_url.clone(),
            bootstrap_key: self.bootstrap_key.clone(),
            settings: self.settings(),
            gateway_policy: self.gateway_policy.clone(),
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
        }
    }

    /// The configuration as YAML, in the file's format, with the database password and the
    /// bootstrap key hidden.
    pub fn printable(&self) -> String {
        let mut value = serde_yaml::to_value(self).unwrap_or_default();
        if let serde_yaml::Value::Mapping(map) = &mut value {
            map.insert("database_url".into(), redact(&self.database_url).into());
            map.insert(
                "bootstrap_key".into(),
                match self.bootstrap_key {
                    Some(_) => "(set, hidden)".into(),
                    None => serde_yaml::Value::Null,
                },
            );
        }
        serde_yaml::to_string(&value).unwrap_or_default()
    }
}

fn read_file(path: &Path) -> Result<ServeOptions, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(ServeOptions::default());
    }
    serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_defaults_load_and_validate() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config, Config::default().with(ServeOptions::default()));
        // The defaults are the server's own.
        let settings = config.settings();
        let server = Settings::default();
        assert_eq!(settings.max_body_bytes, server.max_body_bytes);
        assert_eq!(settings.request_timeout, server.request_timeout);
        assert_eq!(settings.max_concurrency, server.max_concurrency);
        assert_eq!(
            settings.rate_limit, None,
            "the rate limit is off by default"
        );
        assert_eq!(
            settings.decision_log, None,
            "the decision log is off by default"
        );
        assert!(config.serve_config().tls.is_none());
    }

    #[test]
    fn an_empty_file_is_the_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.yaml");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(read_file(&empty).unwrap(), ServeOptions::default());
        let typo = dir.path().join("typo.yaml");
        std::fs::write(&typo, "max_concurency: 3\n").unwrap();
        let e = read_file(&typo).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    }

    #[test]
    fn later_layers_win_field_by_field() {
        let file = ServeOptions {
            max_concurrency: Some(10),
            request_timeout_ms: Some(1000),
            listen: Some("0.0.0.0:9000".to_owned()),
            ..ServeOptions::default()
        };
        let flags = ServeOptions {
            max_concurrency: Some(20),
            ..ServeOptions::default()
        };
        let config = Config::default().with(flags.over(file));
        assert_eq!(config.max_concurrency, 20);
        assert_eq!(config.request_timeout_ms, 1000);
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.max_body_bytes, Config::default().max_body_bytes);
    }

    #[test]
    fn invalid_values_are_named() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            match c.validate() {
                Err(ConfigError::Invalid { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(bad(|c| c.max_concurrency = 0), "max_concurrency");
        assert_eq!(bad(|c| c.decision_log_sample = 1.5), "decision_log_sample");
        assert_eq!(
            bad(|c| c.rate_limit_per_second = -1.0),
            "rate_limit_per_second"
        );
        assert_eq!(bad(|c| c.tls_cert = Some("c.pem".into())), "tls_cert");
        assert_eq!(bad(|c| c.database_url = "mysql://x".into()), "database_url");
    }

    #[test]
    fn the_rate_limit_burst_defaults_to_the_rate() {
        let config = Config {
            rate_limit_per_second: 2.5,
            ..Config::default()
        };
        let limit = config.rate_limit().unwrap();
        assert_eq!(limit.burst, 3.0);
    }

    #[test]
    fn secrets_are_not_printed() {
        let config = Config {
            database_url: "postgres://arbiter:s3cret@db/arbiter".to_owned(),
            bootstrap_key: Some("k".repeat(40)),
            ..Config::default()
        };
        let text = config.printable();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains(&"k".repeat(40)), "{text}");
        assert!(text.contains("max_concurrency: 1024"), "{text}");
    }
}
