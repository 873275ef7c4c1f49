//! OpenTelemetry export: with `ARBITER_OTLP_ENDPOINT`, request spans reach an OTLP/HTTP collector
//! (a small one in this test that records what it receives).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

/// What the collector received: the request line, the content type and the body.
struct Received {
    request_line: String,
    content_type: String,
    body: Vec<u8>,
}

fn collector() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let (mut length, mut content_type) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = lower.strip_prefix("content-type:") {
                    content_type = v.trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(Received {
                request_line: request_line.trim().to_owned(),
                content_type,
                body,
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn request_spans_are_exported_over_otlp_http() {
    let (url, received) = collector();
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let mut app = spawn_app_on(db, dir, &[("ARBITER_OTLP_ENDPOINT", url.as_str())]).await;
    let me = app.get("/v1/users/me", ADMIN_KEY, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    // A graceful stop flushes the spans still batched.
    assert!(app.terminate().success());
    let got = received
        .recv_timeout(Duration::from_secs(30))
        .expect("the collector received no export");
    assert_eq!(got.request_line, "POST /v1/traces HTTP/1.1");
    assert_eq!(got.content_type, "application/x-protobuf");
    let body = String::from_utf8_lossy(&got.body);
    assert!(
        body.contains("arbiter"),
        "the service name is in the export"
    );
    assert!(
        body.contains("/v1/users/me"),
        "the request's route is in the export"
    );
}
