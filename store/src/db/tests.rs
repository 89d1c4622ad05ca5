//! The dialect's own tests: TLS modes from the URL, statement rewriting.

use tillsyn_config::StoreConfig;
use tokio_postgres::config::SslMode;

fn mode(url: &str) -> SslMode {
    let target = StoreConfig {
        url: url.to_owned(),
        password: None,
        ca_file: None,
    };
    match super::prepare(&target) {
        Ok((config, _)) => config.get_ssl_mode(),
        Err(error) => unreachable!("{url}: {error}"),
    }
}

#[test]
fn many_rows_renumber_each_rows_parameters() {
    assert_eq!(
        super::many_rows(
            "INSERT INTO t (a, b, c) VALUES ($1, $2, $1) ON CONFLICT DO NOTHING",
            3,
            2
        )
        .as_deref(),
        Some(
            "INSERT INTO t (a, b, c) VALUES ($1, $2, $1), ($3, $4, $3), ($5, $6, $5) ON CONFLICT DO NOTHING"
        )
    );
    assert_eq!(super::many_rows("UPDATE t SET a = $1", 2, 1), None);
}

/// TLS is required unless the url says otherwise, except on loopback and
/// Unix sockets, where it is used when the server offers it.
#[test]
fn tls_is_required_off_loopback_unless_the_url_says_otherwise() {
    assert_eq!(mode("postgres://t@db.example.org/x"), SslMode::Require);
    assert_eq!(mode("postgres://t@10.1.2.3:5433/x"), SslMode::Require);
    assert_eq!(mode("postgres://t@127.0.0.1/x"), SslMode::Prefer);
    assert_eq!(mode("postgres://t@localhost/x"), SslMode::Prefer);
    assert_eq!(mode("postgres://t@[::1]/x"), SslMode::Prefer);
    assert_eq!(mode("postgres://t@%2Frun%2Fpostgresql/x"), SslMode::Prefer);
    assert_eq!(
        mode("postgres://t@db.example.org/x?sslmode=disable"),
        SslMode::Disable
    );
    assert_eq!(
        mode("postgres://t@127.0.0.1/x?sslmode=require"),
        SslMode::Require
    );
}
