//! Cron schedules in the configured time zone: when a source is scanned next, which
//! ticks a slow scan overran, and whether a run was missed while tillsyn was down.
//!
//! Why not tokio-cron-scheduler: its time-zone jobs keep the UTC offset they were
//! created with, so after a DST change they fire an hour off; it keeps no record of
//! past runs, so runs missed while the daemon was down are lost; and it spawns
//! each tick, so a slow scan overlaps itself. The daemon needs the opposite on all
//! three counts, which leaves only the part that computes the next matching time.
//! That part is `croner` (the cron engine tokio-cron-scheduler itself uses), asked
//! in local time, so "03:00 every day" stays 03:00 in Stockholm in summer and in
//! winter; a time that does not exist on the night clocks spring forward runs at
//! the first minute after the gap, and a time that happens twice runs once.
//!
//! Patterns have six fields, seconds first: `sec min hour day-of-month month
//! day-of-week`, e.g. `"0 30 2 * * *"` (02:30:00 daily) or `"0 0 4 * * MON"`.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed six-field cron pattern.
#[derive(Clone)]
pub struct Schedule {
    cron: Cron,
    text: String,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid schedule {text:?}: {reason}; write six fields, seconds first, e.g. \"0 30 2 * * *\" for 02:30 every day"
)]
pub struct ScheduleError {
    /// The pattern as written.
    pub text: String,
    /// What the cron parser said.
    pub reason: String,
}

impl Schedule {
    /// Parse a six-field pattern.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let fields = text.split_whitespace().count();
        if fields != 6 {
            return Err(ScheduleError {
                text: text.to_owned(),
                reason: format!("it has {fields} fields"),
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(text)
            .map_err(|error| ScheduleError {
                text: text.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Schedule {
            cron,
            text: text.to_owned(),
        })
    }

    /// The first time strictly after `after` that matches, read in `zone`.
    /// `None` when the pattern never matches again (e.g. February 30th).
    pub fn next_after(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// The last time at or before `at` that matches, read in `zone`: the tick
    /// a fleet's units are due for (the fleet). `None` when the pattern
    /// never matched.
    pub fn last_at_or_before(&self, at: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&zone);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|previous| previous.with_timezone(&Utc))
    }

    /// How many matching times fall in `(after, until]`, counting at most `cap`:
    /// the ticks a scan that ran over them made late.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        zone: Tz,
        cap: u64,
    ) -> u64 {
        let mut count = 0;
        let mut cursor = after;
        while count < cap {
            match self.next_after(cursor, zone) {
                Some(next) if next <= until => {
                    count += 1;
                    cursor = next;
                }
                _ => break,
            }
        }
        count
    }

    /// Whether a run was due between the last run's start and `now`, i.e. one
    /// was missed (the daemon was down at the time).
    pub fn missed_since(&self, last_run: DateTime<Utc>, now: DateTime<Utc>, zone: Tz) -> bool {
        self.next_after(last_run, zone)
            .is_some_and(|next| next <= now)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Schedule, D::Error> {
        let text = String::deserialize(deserializer)?;
        Schedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_else(|error| unreachable!("bad test time {text}: {error}"))
    }

    fn schedule(text: &str) -> Schedule {
        Schedule::parse(text).unwrap_or_else(|error| unreachable!("{error}"))
    }

    #[test]
    fn refuses_anything_but_six_fields() {
        for text in ["", "0 3 * * *", "0 0 3 * * * 2026", "every day"] {
            assert!(Schedule::parse(text).is_err(), "{text:?} was accepted");
        }
        assert!(Schedule::parse("0 61 * * * *").is_err());
        assert!(Schedule::parse("0 0 3 * * MON-FRI").is_ok());
    }

    #[test]
    fn keeps_local_time_across_both_dst_changes() {
        let stockholm: Tz = chrono_tz::Europe::Stockholm;
        let daily = schedule("0 0 3 * * *");
        // Winter (CET, UTC+1): 03:00 local is 02:00 UTC.
        assert_eq!(
            daily.next_after(utc("2026-01-10T12:00:00Z"), stockholm),
            Some(utc("2026-01-11T02:00:00Z"))
        );
        // Across spring forward (29 March 2026): 03:00 CEST is 01:00 UTC.
        assert_eq!(
            daily.next_after(utc("2026-03-28T12:00:00Z"), stockholm),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        // Across fall back (25 October 2026): back to 02:00 UTC.
        assert_eq!(
            daily.next_after(utc("2026-10-24T12:00:00Z"), stockholm),
            Some(utc("2026-10-25T02:00:00Z"))
        );
    }

    #[test]
    fn the_last_tick_is_the_latest_matching_time_not_after_now() {
        let stockholm: Tz = chrono_tz::Europe::Stockholm;
        let daily = schedule("0 0 3 * * *");
        assert_eq!(
            daily.last_at_or_before(utc("2026-01-10T12:00:00Z"), stockholm),
            Some(utc("2026-01-10T02:00:00Z"))
        );
        // Before today's 03:00 it is yesterday's; exactly at it, today's.
        assert_eq!(
            daily.last_at_or_before(utc("2026-01-10T01:59:59Z"), stockholm),
            Some(utc("2026-01-09T02:00:00Z"))
        );
        assert_eq!(
            daily.last_at_or_before(utc("2026-01-10T02:00:00Z"), stockholm),
            Some(utc("2026-01-10T02:00:00Z"))
        );
        // Every tick leads to the next one: last tick, then next after it.
        let tick = daily.last_at_or_before(utc("2026-03-28T12:00:00Z"), stockholm);
        assert_eq!(
            tick.and_then(|tick| daily.next_after(tick, stockholm)),
            Some(utc("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn a_time_inside_the_spring_gap_runs_once_right_after_it() {
        let stockholm: Tz = chrono_tz::Europe::Stockholm;
        // 02:30 does not exist on 29 March 2026 in Stockholm.
        let nightly = schedule("0 30 2 * * *");
        let next = nightly.next_after(utc("2026-03-28T12:00:00Z"), stockholm);
        assert_eq!(next, Some(utc("2026-03-29T01:00:00Z")));
        let after = next.and_then(|next| nightly.next_after(next, stockholm));
        assert_eq!(after, Some(utc("2026-03-30T00:30:00Z")));
    }

    #[test]
    fn a_time_that_happens_twice_in_autumn_runs_once() {
        let stockholm: Tz = chrono_tz::Europe::Stockholm;
        // 02:30 happens twice on 25 October 2026.
        let nightly = schedule("0 30 2 * * *");
        let runs = nightly.ticks_between(
            utc("2026-10-24T12:00:00Z"),
            utc("2026-10-25T12:00:00Z"),
            stockholm,
            10,
        );
        assert_eq!(runs, 1);
    }

    #[test]
    fn counts_overrun_ticks_and_missed_runs() {
        let zone: Tz = chrono_tz::UTC;
        let every_second = schedule("* * * * * *");
        let start = utc("2026-11-21T10:00:00Z");
        let end = utc("2026-11-21T10:00:03Z");
        assert_eq!(every_second.ticks_between(start, end, zone, 100), 3);
        assert_eq!(every_second.ticks_between(start, end, zone, 2), 2);
        let monthly = schedule("0 0 5 1 * *");
        let last = utc("2026-10-01T05:00:10Z");
        assert!(!monthly.missed_since(last, utc("2026-10-31T23:00:00Z"), zone));
        assert!(monthly.missed_since(last, utc("2026-11-01T05:00:00Z"), zone));
    }
}
