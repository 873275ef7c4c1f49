//! The yardstick of the HTTP benchmark: a bare axum server whose `POST /v1/check` answers the
//! same constant decision to every request, without reading it. The gap between this and the
//! real server under `arbiter bench --target check` is what Arbiter adds on top of HTTP itself:
//! authentication, parsing, the decision, metrics, tracing and request ids.
//!
//! ```sh
//! cargo run --release -p arbiter --example constant_decision -- 127.0.0.1:18081 &
//! arbiter bench --url http://127.0.0.1:18081 --key unused --target check --duration 10
//! ```

use axum::routing::post;
use axum::Router;

// As the server: the same allocator, the same runtime.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DECISION: &str = r#"{"allowed":true,"revision":"0"}"#;

fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    tokio::runtime::Runtime::new()?.block_on(async {
        let app = Router::new().route(
            "/v1/check",
            post(|| async { ([("content-type", "application/json")], DECISION) }),
        );
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        eprintln!("answering a constant decision on http://{listen}/v1/check");
        axum::serve(listener, app).await
    })
}
