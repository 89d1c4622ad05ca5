//! tillsyn's application layer: what a run does with a config, over the
//! layers below (ARCHITECTURE.md has the map). The binary's commands and
//! the daemon call in here; nothing here parses arguments or owns a
//! process.
//!
//! - [`engine`]: the one build of a config: rules under the key, the store,
//!   each source's connector, how people are shown;
//! - [`runner`]: one scan from connector to stored findings (lease,
//!   deadline, panics, cancellation), and a pass over every source;
//! - [`erasure`]: the erasure register imported, and each request's state;
//! - [`init`]: `tillsyn init`'s starting config from a few answers;
//! - [`subject`]: where a person's data is (`tillsyn subject`);
//! - [`report`]: the monthly report, the custodians' digests, their mail
//!   and the outbox delivering both;
//! - [`metrics`]: the Prometheus registry and what updates it;
//! - [`output`]: findings as a table, JSON Lines or CSV;
//! - [`privacy`]: what output may show of people, and private files.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::panic)]

pub mod engine;
pub mod erasure;
pub mod init;
pub mod metrics;
pub mod output;
#[cfg(test)]
mod parser_properties;
pub mod privacy;
#[cfg(target_os = "linux")]
mod process_metrics;
pub mod report;
pub mod runner;
pub mod subject;
