//! tillsyn's model: the types and policies every other crate shares, with no
//! I/O of its own. It is the bottom layer; it imports no tillsyn crate.
//!
//! - [`dates`]: the one date policy and dates as stores write them;
//! - [`period`] and [`schedule`]: retention spans and cron schedules;
//! - [`fingerprint`]: the one stable fingerprint of "what was in force";
//! - [`identity`]: the keyed hash of identifiers, the only form they are kept in;
//! - [`secret`]: secrets that redact themselves;
//! - [`backoff`]: the one wait between attempts;
//! - [`language`] and [`detail`]: what a finding measured, in the reader's language;
//! - [`status`] and [`unit`]: how a scan ended, and the names of a source's parts.

pub mod backoff;
pub mod dates;
pub mod detail;
pub mod fingerprint;
pub mod identity;
pub mod language;
pub mod period;
#[cfg(test)]
mod properties;
pub mod schedule;
pub mod secret;
pub mod status;
pub mod unit;
