//! The `tillsyn` binary's commands: it parses arguments ([`cli::Args`])
//! and wires the layers below, nothing more. What a command does lives in
//! `tillsyn-app` and the crates under it (ARCHITECTURE.md has the map).
//!
//! - [`cli`]: the command line, one function per command, and the exit
//!   codes;
//! - [`daemon`]: `tillsyn run`: schedules, `/metrics`, reloads, the report's
//!   and digests' schedule, the fleet, shutdown;
//! - [`demo`]: builds a small organisation on disk and audits it.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::panic)]

pub mod cli;
pub mod daemon;
pub mod demo;
