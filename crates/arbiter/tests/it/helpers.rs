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
        .env("ARBITER_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("ARBITER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
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
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
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
