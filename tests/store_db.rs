//! The store's SQL layer (`src/store/db.rs`) on SQLite and on a real
//! PostgreSQL, one server for the file: the same migrations make the same
//! tables and columns on both; values, upserts, `RETURNING` and sums read back
//! the same; two instances migrating at once end at the same version.

mod common;

use std::sync::OnceLock;

use common::postgres::{PASSWORD, Postgres as Server, USER};
use tillsyn_store::db::{self, Database, Postgres, Value};

/// The server at `url`, logged in with `password`.
fn target(url: &str, password: &[u8]) -> tillsyn_config::StoreConfig {
    tillsyn_config::StoreConfig {
        url: url.to_owned(),
        password: Some(tillsyn_core::secret::Secret::new(password.to_vec())),
        ca_file: None,
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

/// A fresh PostgreSQL database of its own.
fn postgres(name: &str) -> (Postgres, String) {
    let server = server();
    server.psql(&format!("CREATE DATABASE {name}"));
    let url = format!("postgres://{USER}@127.0.0.1:{}/{name}", server.port);
    let connection = Postgres::connect(&target(&url, PASSWORD.as_bytes())).expect("connect");
    (connection, url)
}

fn sqlite() -> rusqlite::Connection {
    rusqlite::Connection::open_in_memory().expect("sqlite")
}

/// Tables and their columns, in order, as each engine lists them.
fn columns(database: &dyn Database) -> Vec<(String, Vec<String>)> {
    let tables: Vec<String> = match database.engine() {
        db::Engine::Sqlite => database
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                &[],
            )
            .expect("tables"),
        db::Engine::Postgres => database
            .query(
                "SELECT table_name FROM information_schema.tables
                 WHERE table_schema = 'public' AND table_name <> 'schema_version'
                 ORDER BY table_name",
                &[],
            )
            .expect("tables"),
    }
    .iter()
    .map(|row| row.text(0).expect("name"))
    .collect();
    tables
        .into_iter()
        .map(|table| {
            let names = match database.engine() {
                db::Engine::Sqlite => database
                    .query(
                        &format!("SELECT name FROM pragma_table_info('{table}')"),
                        &[],
                    )
                    .expect("columns"),
                db::Engine::Postgres => database
                    .query(
                        "SELECT column_name::text FROM information_schema.columns
                         WHERE table_name = $1 ORDER BY ordinal_position",
                        &[Value::from(table.as_str())],
                    )
                    .expect("columns"),
            }
            .iter()
            .map(|row| row.text(0).expect("column"))
            .collect();
            (table, names)
        })
        .collect()
}

#[test]
fn the_same_migrations_make_the_same_schema_on_both_engines() {
    let lite = sqlite();
    let (pg, _) = postgres("schema_same");
    let known = db::migrate(&lite).expect("sqlite migrations");
    assert_eq!(db::migrate(&pg).expect("postgres migrations"), known);
    assert_eq!(lite.schema_version().expect("version"), known);
    assert_eq!(pg.schema_version().expect("version"), known);
    // Again: nothing to do.
    db::migrate(&pg).expect("again");
    assert_eq!(pg.schema_version().expect("version"), known);
    let lite_columns = columns(&lite);
    assert!(lite_columns.iter().any(|(table, _)| table == "findings"));
    assert_eq!(columns(&pg), lite_columns);
}

/// The same statements, written once, on either engine.
fn round_trips(database: &dyn Database) {
    db::migrate(database).expect("migrate");
    let custodians: Vec<u8> = (0u8..=255).collect();
    for records in [0i64, 1, i64::from(u32::MAX) + 7] {
        database
            .execute(
                "INSERT INTO checked_counts (source, rule, records, custodians, complete)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (source, rule) DO UPDATE SET records = excluded.records,
                     custodians = excluded.custodians, complete = excluded.complete",
                &[
                    Value::from("mail"),
                    Value::from("inbox 'quoted' $1"),
                    Value::from(records),
                    Value::from(custodians.clone()),
                    Value::from(records > 0),
                ],
            )
            .expect("upsert");
        let rows = database
            .query(
                "SELECT records, custodians, complete, rule FROM checked_counts WHERE source = $1",
                &[Value::from("mail")],
            )
            .expect("read");
        assert_eq!(rows.len(), 1, "{:?}", database.engine());
        assert_eq!(rows[0].int(0).expect("records"), records);
        assert_eq!(rows[0].blob(1).expect("custodians"), custodians);
        assert_eq!(rows[0].int(2).expect("complete"), i64::from(records > 0));
        assert_eq!(rows[0].text(3).expect("rule"), "inbox 'quoted' $1");
    }
    // RETURNING gives the new row's id; NULL reads back as none.
    let id = database
        .query(
            "INSERT INTO scans (source, started_at, status, error_kind) VALUES ($1, $2, 'running', $3)
             RETURNING id",
            &[Value::from("mail"), Value::from(1_700_000_000i64), Value::Null],
        )
        .expect("insert")[0]
        .int(0)
        .expect("id");
    let second = database
        .query(
            "INSERT INTO scans (source, started_at, status) VALUES ($1, $2, 'running') RETURNING id",
            &[Value::from("mail"), Value::from(1_700_000_100i64)],
        )
        .expect("insert")[0]
        .int(0)
        .expect("id");
    assert!(second > id);
    let row = database
        .query(
            "SELECT error_kind, sum(started_at), count(*) FROM scans WHERE source = $1 GROUP BY error_kind",
            &[Value::from("mail")],
        )
        .expect("sum");
    assert_eq!(row[0].opt_text(0).expect("kind"), None);
    assert_eq!(row[0].int(1).expect("sum"), 3_400_000_100);
    assert_eq!(row[0].int(2).expect("count"), 2);
    // A text column is not an integer: a clear error, no panic.
    assert!(row[0].int(0).is_err());
    assert_eq!(
        database
            .execute(
                "UPDATE scans SET status = 'failed' WHERE id = $1",
                &[Value::from(id)]
            )
            .expect("update"),
        1
    );
}

#[test]
fn values_upserts_returning_and_sums_read_back_the_same() {
    round_trips(&sqlite());
    let (pg, _) = postgres("round_trips");
    round_trips(&pg);
}

/// A transaction that fails leaves nothing; one that succeeds, everything.
fn transactions(database: &dyn Database) {
    db::migrate(database).expect("migrate");
    let insert = |database: &dyn Database, key: &str| {
        database.execute(
            "INSERT INTO checkpoints (source, key, value, updated_at) VALUES ('s', $1, 'v', 0)",
            &[Value::from(key)],
        )
    };
    let failed: Result<(), db::DbError> = db::transaction(database, true, |database| {
        insert(database, "kept-back")?;
        // The same key again breaks the primary key: the whole transaction goes.
        insert(database, "kept-back")?;
        Ok(())
    });
    assert!(failed.is_err());
    db::transaction(database, true, |database| {
        insert(database, "one")?;
        insert(database, "two")
    })
    .expect("commit");
    let keys: Vec<String> = database
        .query("SELECT key FROM checkpoints ORDER BY key", &[])
        .expect("keys")
        .iter()
        .map(|row| row.text(0).expect("key"))
        .collect();
    assert_eq!(keys, ["one", "two"], "{:?}", database.engine());
}

#[test]
fn a_failed_transaction_leaves_nothing_on_either_engine() {
    transactions(&sqlite());
    let (pg, _) = postgres("transactions");
    transactions(&pg);
}

#[test]
fn instances_migrating_at_once_end_at_the_same_version() {
    let (_, url) = postgres("racing_migrations");
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let pg = Postgres::connect(&target(&url, PASSWORD.as_bytes())).expect("connect");
                db::migrate(&pg).expect("migrate")
            })
        })
        .collect();
    let versions: Vec<usize> = workers
        .into_iter()
        .map(|worker| worker.join().expect("worker"))
        .collect();
    let pg = Postgres::connect(&target(&url, PASSWORD.as_bytes())).expect("connect");
    let version = pg.schema_version().expect("version");
    assert!(
        versions.iter().all(|known| *known == version),
        "{versions:?}"
    );
    // A wrong password is the server's clear refusal.
    let refused = match Postgres::connect(&target(&url, b"wrong")) {
        Ok(_) => panic!("a wrong password connected"),
        Err(error) => error.to_string(),
    };
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
}

#[test]
fn placeholders_become_sqlites_outside_quotes() {
    assert_eq!(
        db::sqlite_sql("SELECT '$1', \"$2\" FROM t WHERE a = $1 AND b = $12"),
        "SELECT '$1', \"$2\" FROM t WHERE a = ?1 AND b = ?12"
    );
    assert_eq!(db::sqlite_sql("SELECT 1"), "SELECT 1");
    assert!(
        db::postgres_ddl("id INTEGER PRIMARY KEY, n INTEGER, b BLOB) WITHOUT ROWID")
            .contains("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, b BYTEA)")
    );
}
