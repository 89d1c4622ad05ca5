//! tillsyn ("oversight") checks, continuously, whether an organisation keeps the
//! promises of its own privacy policy: it reads mailboxes, directories, CRMs and
//! file shares, never writing to them, finds where reality breaks a promise, and
//! reports it.
//!
//! Layout of the workspace:
//! - `connectors/` (crate `tillsyn-connectors`): the read side, one module per kind
//!   of store behind one trait, producing normalised records.
//! - `detectors/` (crate `tillsyn-detectors`): personal data in text (personnummer,
//!   IBAN, cards, phones, addresses, custom), for `contains` rules.
//! - `src/` (this crate):
//!   - [`config`]: the TOML config, checked with every error and its line.
//!   - [`period`]: human durations with calendar months (`"36 months"`).
//!   - [`rules`]: the rules engine; sees only records.
//!   - [`store`]: the SQLite findings store: scans, findings, checkpoints,
//!     scan leases, the report outbox and its claims, retention.
//!   - [`scan`]: the scan runner from connector to stored findings; owns the
//!     lifecycle (lease, deadline, panics, cancellation).
//!   - [`privacy`]: what output may show of people: names or keyed
//!     pseudonyms, for custodians, record locations and notes; private files.
//!   - [`secret`]: secrets from files or the environment, redacted.
//!   - [`output`]: findings as a table or JSON Lines.
//!   - [`cli`]: the commands; `main.rs` only parses arguments.
//!   - [`demo`]: builds a small organisation on disk and audits it.
//!   - [`schedule`]: six-field cron schedules in the configured time zone.
//!   - [`metrics`]: the Prometheus registry and what updates it.
//!   - [`daemon`]: `tillsyn run`: per-source scheduling, `/metrics`, reloads,
//!     shutdown, the monthly report's schedule.
//!   - [`report`]: the monthly compliance report: data from the store,
//!     templates, chart, CSV, mail and outbox.
//! - `reports/`: the report's handlebars templates and chart font (data, not code).
//! - `examples/policies/`: one policy pack per seed company, quoting its promises.
//! - `config.example.toml`: every key, commented, with its default.
//! - `systemd/`: the hardened service unit; `monitoring/`: alerting rules and a
//!   Grafana dashboard; `tests/`: integration tests against real stores
//!   (Dovecot, slapd, an HTTP server, generated trees); `benches/`: comparisons
//!   with peer tools, results in `BENCHMARKS.md`.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::panic)]

pub mod cli;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod erasure;
pub mod metrics;
pub mod output;
#[cfg(test)]
mod parser_properties;
pub mod privacy;
pub mod report;
pub mod scan;
pub mod subject;
