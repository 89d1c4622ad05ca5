//! The `tillsyn` binary's commands: it parses arguments
//! ([`command_line::Args`]) and wires the layers below, nothing more. What
//! a command does lives in `tillsyn-app` and the crates under it
//! (ARCHITECTURE.md has the map).
//!
//! - [`command_line`]: the arguments, and which command they run;
//! - [`cli`]: one function per command, and the exit codes;
//! - [`daemon`]: `tillsyn run`: schedules, `/metrics`, reloads, the report's
//!   and digests' schedule, the fleet, shutdown;
//! - [`demo`]: builds a small organisation on disk and audits it.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::panic)]

pub mod cli;
pub mod command_line;
pub mod daemon;
pub mod demo;
