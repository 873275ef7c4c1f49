//! What the store tests share.

use sqlx::Connection;

/// A fresh PostgreSQL database on the server `ARBITER_TEST_POSTGRES_URL` names, dropped with
/// this value.
pub struct FreshPostgres {
    pub url: String,
    name: String,
    admin_url: String,
}

impl FreshPostgres {
    /// `None`, saying so, when `ARBITER_TEST_POSTGRES_URL` is not set.
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("ARBITER_TEST_POSTGRES_URL") else {
            eprintln!("skipped: ARBITER_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = format!("arbiter_s_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        Some(Self {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        })
    }

    /// Drops the database (and its connections).
    pub async fn drop_database(self) {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await;
    }
}
