//! `spawn_app`: the real `arbiter` binary on port 0 with a temporary SQLite file (or a
//! PostgreSQL database), and a small client for it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The bootstrap key every test server starts with.
pub const ADMIN_KEY: &str = "test-bootstrap-key-0123456789-abcdefghijkl";

/// A running `arbiter serve`.
pub struct TestApp {
    pub base: String,
    pub database_url: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub client: reqwest::Client,
    /// What the first start printed on standard output.
    pub stdout_lines: Vec<String>,
    /// The PostgreSQL database the server runs on, dropped after the server stops.
    pub pg: Option<PgDatabase>,
}

/// The answer of a call: status, headers and JSON body (`Value::Null` when empty).
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn revision(&self) -> Option<u64> {
        self.headers
            .get("x-arbiter-revision")?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }
}

fn start(
    database_url: &str,
    dir: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> (Child, String, Vec<String>) {
    start_with(database_url, dir, Some(ADMIN_KEY), extra_env)
}

/// Starts the binary with `ARBITER_BOOTSTRAP_KEY` set to `bootstrap_key`, or unset when `None`.
#[allow(
    clippy::zombie_processes,
    reason = "the child is handed to `TestApp`, which kills and waits for it"
)]
fn start_with(
    database_url: &str,
    dir: &std::path::Path,
    bootstrap_key: Option<&str>,
    extra_env: &[(&str, &str)],
) -> (Child, String, Vec<String>) {
    let log = std::fs::File::create(dir.join("server.log")).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_arbiter"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ])
        .env("ARBITER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    match bootstrap_key {
        Some(key) => command.env("ARBITER_BOOTSTRAP_KEY", key),
        None => command.env_remove("ARBITER_BOOTSTRAP_KEY"),
    };
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start arbiter");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read stdout");
        if n == 0 {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("arbiter exited before listening; log:\n{log}");
        }
        let line = line.trim_end().to_owned();
        if let Some(addr) = line.strip_prefix("arbiter listening on ") {
            let addr = addr.to_owned();
            lines.push(line);
            // Keep draining stdout so that the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in reader.lines() {});
            return (child, addr, lines);
        }
        lines.push(line);
    }
}

/// Starts a server on a new SQLite file.
/// Starts a server on a new SQLite file; on a new PostgreSQL database instead when
/// `ARBITER_TEST_STORE=postgres` (the `.ci/run` second pass plays the behavioural suite so).
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    if std::env::var("ARBITER_TEST_STORE").is_ok_and(|s| s == "postgres") {
        let db = postgres_database()
            .await
            .expect("ARBITER_TEST_STORE=postgres needs ARBITER_TEST_POSTGRES_URL");
        let mut app = spawn_app_on(db.url.clone(), dir, &[]).await;
        app.pg = Some(db);
        return app;
    }
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    spawn_app_on(url, dir, &[]).await
}

/// Starts a server on a database URL.
pub async fn spawn_app_on(
    database_url: String,
    dir: tempfile::TempDir,
    extra_env: &[(&str, &str)],
) -> TestApp {
    let (child, base, stdout_lines) = start(&database_url, dir.path(), extra_env);
    TestApp {
        base,
        database_url,
        dir,
        child: Some(child),
        client: reqwest::Client::new(),
        stdout_lines,
        pg: None,
    }
}

impl TestApp {
    /// Kills the server (SIGKILL: no graceful anything) and starts it again on the same store.
    pub fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (child, base, _) = start(&self.database_url, self.dir.path(), &[]);
        self.child = Some(child);
        self.base = base;
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        child.wait().expect("wait")
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// A call with a key, an optional organization and an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        org: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(org) = org {
            request = request.header("X-Organization-Id", org);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// A raw call with a given content type and body bytes.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        org: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(org) = org {
            request = request.header("X-Organization-Id", org);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, key: &str, org: Option<&str>) -> Answer {
        self.call(Method::GET, path, Some(key), org, None).await
    }

    pub async fn post(&self, path: &str, key: &str, org: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, Some(key), org, Some(&body))
            .await
    }

    pub async fn put(&self, path: &str, key: &str, org: Option<&str>, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(key), org, Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, key: &str, org: Option<&str>, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(key), org, Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str, key: &str, org: Option<&str>) -> Answer {
        self.call(Method::DELETE, path, Some(key), org, None).await
    }

    /// Creates an organization as the platform administrator; answers its id.
    pub async fn create_org(&self, name: &str) -> String {
        let a = self
            .post(
                "/v1/organizations",
                ADMIN_KEY,
                None,
                serde_json::json!({"name": name}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        a.body["id"].as_str().expect("id").to_owned()
    }

    /// Creates a member of `org`; answers its id.
    pub async fn create_user(&self, org: &str, email: &str) -> String {
        let a = self
            .post(
                "/v1/users",
                ADMIN_KEY,
                Some(org),
                serde_json::json!({"email": email}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        a.body["id"].as_str().expect("id").to_owned()
    }

    /// Creates a user key for `user_id` (as the administrator, in `org`); answers the secret.
    pub async fn create_key(&self, org: &str, user_id: &str) -> String {
        let a = self
            .post(
                "/v1/api-keys",
                ADMIN_KEY,
                Some(org),
                serde_json::json!({"name": "k", "user_id": user_id}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        a.body["key"].as_str().expect("key").to_owned()
    }

    /// Binds a role (by id) to a user on a node, as the administrator.
    pub async fn bind(
        &self,
        org: &str,
        role_id: &str,
        user_id: &str,
        resource_type: &str,
        resource_id: Option<&str>,
    ) -> String {
        let a = self
            .post(
                "/v1/role-bindings",
                ADMIN_KEY,
                Some(org),
                serde_json::json!({"role_id": role_id, "user_id": user_id, "resource_type": resource_type, "resource_id": resource_id}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        a.body["id"].as_str().expect("id").to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Asserts the JSON error shape and returns its code.
pub fn error_code(a: &Answer) -> String {
    let code = a.body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {}", a.text));
    assert!(a.body["error"]["message"].is_string(), "{}", a.text);
    code.to_owned()
}

/// Starts a server on a new SQLite file without `ARBITER_BOOTSTRAP_KEY`, so that the first start
/// generates the administrator's key and prints it.
pub async fn spawn_app_without_bootstrap_key() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let (child, base, stdout_lines) = start_with(&database_url, dir.path(), None, &[]);
    TestApp {
        base,
        database_url,
        dir,
        child: Some(child),
        client: reqwest::Client::new(),
        stdout_lines,
        pg: None,
    }
}

/// The id of a predefined role.
pub fn predefined(name: &str) -> String {
    format!("role_{name}")
}

/// The `id` of an answer's body.
pub fn id_of(a: &Answer) -> String {
    a.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in: {}", a.text))
        .to_owned()
}

/// Asserts an error answer: the status, the exact `{"error": {"code", "message", "details"}}`
/// shape, and the code.
pub fn assert_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    let top = a
        .body
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {:?}", a.text));
    assert_eq!(top.len(), 1, "only `error` at the top: {}", a.text);
    let error = a.body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {}", a.text));
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        a.text
    );
    assert!(error["details"].is_object(), "{}", a.text);
    assert_eq!(error_code(a), code, "{}", a.text);
    let content_type = a
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}

/// Tracks the revisions writes answer: each must carry `X-Arbiter-Revision`, higher than the last.
pub struct Revisions {
    pub last: u64,
}

impl Revisions {
    pub async fn new(app: &TestApp) -> Self {
        Self {
            last: app.head_revision().await,
        }
    }

    /// Asserts that `a` answers a new, higher revision, and remembers it.
    pub fn advanced(&mut self, a: &Answer) -> u64 {
        let revision = a
            .revision()
            .unwrap_or_else(|| panic!("no X-Arbiter-Revision on a write: {}", a.text));
        assert!(
            revision > self.last,
            "revision {revision} is not above {}: {}",
            self.last,
            a.text
        );
        self.last = revision;
        revision
    }

    /// Asserts that the store did not move since the last write.
    pub async fn unchanged(&self, app: &TestApp) {
        assert_eq!(
            app.head_revision().await,
            self.last,
            "a refused request changed the store"
        );
    }
}

impl TestApp {
    /// Kills the server (SIGKILL) and starts it again on the same store, with
    /// `ARBITER_BOOTSTRAP_KEY` set to `bootstrap_key` or unset; answers what the start printed.
    pub fn kill_and_restart_with(&mut self, bootstrap_key: Option<&str>) -> Vec<String> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (child, base, lines) =
            start_with(&self.database_url, self.dir.path(), bootstrap_key, &[]);
        self.child = Some(child);
        self.base = base;
        lines
    }

    /// The revision the store is at, as `/readyz` tells it.
    pub async fn head_revision(&self) -> u64 {
        let a = self.call(Method::GET, "/readyz", None, None, None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        a.body["store_revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no store_revision: {}", a.text))
    }

    /// A call with extra request headers.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// A new member of `org` with a key of its own: `(user id, key secret)`.
    pub async fn member_with_key(&self, org: &str, email: &str) -> (String, String) {
        let user = self.create_user(org, email).await;
        let key = self.create_key(org, &user).await;
        (user, key)
    }

    /// A custom role of `org`, created by the administrator; answers its id.
    pub async fn custom_role(&self, org: &str, name: &str, permissions: Value) -> String {
        let a = self
            .post(
                "/v1/roles",
                ADMIN_KEY,
                Some(org),
                serde_json::json!({"name": name, "permissions": permissions}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        id_of(&a)
    }

    /// A space of `org`, created by the administrator; answers its id.
    pub async fn create_space(&self, org: &str, name: &str) -> String {
        let a = self
            .post(
                "/v1/spaces",
                ADMIN_KEY,
                Some(org),
                serde_json::json!({"name": name}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        id_of(&a)
    }

    /// A project in a space, created by the administrator; answers its id.
    pub async fn create_project(&self, org: &str, space: &str, name: &str) -> String {
        let a = self
            .post(
                "/v1/projects",
                ADMIN_KEY,
                Some(org),
                serde_json::json!({"name": name, "space_id": space}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        id_of(&a)
    }

    /// Asks, as the administrator, whether a user may exercise `permission` on a resource of
    /// `org`.
    pub async fn allowed(
        &self,
        org: &str,
        user: &str,
        permission: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> bool {
        let a = self
            .post(
                "/v1/check",
                ADMIN_KEY,
                Some(org),
                serde_json::json!({
                    "subject": {"type": "user", "id": user},
                    "permission": permission,
                    "resource": {"type": resource_type, "id": resource_id},
                }),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        a.body["allowed"]
            .as_bool()
            .unwrap_or_else(|| panic!("no decision: {}", a.text))
    }

    /// The `total` of a list.
    pub async fn total(&self, path: &str, key: &str, org: Option<&str>) -> u64 {
        let a = self.get(path, key, org).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        a.body["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("no total: {}", a.text))
    }
}

/// A PostgreSQL database made for one test and dropped with it.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

/// A new database on the server `ARBITER_TEST_POSTGRES_URL` names, or `None` (with the reason
/// printed) when it is unset.
pub async fn postgres_database() -> Option<PgDatabase> {
    let Ok(admin_url) = std::env::var("ARBITER_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipped: ARBITER_TEST_POSTGRES_URL is not set, so the PostgreSQL store is not tested"
        );
        return None;
    };
    use sqlx::Connection;
    let name = format!("arbiter_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to ARBITER_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    Some(PgDatabase {
        url: format!("{base}/{name}"),
        admin_url,
        name,
    })
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside the test's runtime: a small runtime of its own does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
