//! `tillsyn draft-rules`: from a privacy policy's text to a draft policy pack.
//!
//! Setting tillsyn up means turning each promise of one's own policy into a
//! rule. This reads the policy (plain UTF-8 text; HTML with its tags removed
//! will do), finds the sentences that promise retention, deletion,
//! minimisation or a response time ([`sentences`], [`grammar`]), and writes
//! the same TOML as `examples/policies/*.toml`: one rule per promise, quoting
//! its sentence exactly, with the kind, period and clock the grammar reads,
//! and a `# TODO` naming what the admin fills in (sources and `when`; tillsyn
//! never makes up a source). What cannot be checked as written ("så länge det
//! behövs") and what looked like a promise but was ambiguous are listed in a
//! summary at the end, each with its reason.

pub mod grammar;
#[cfg(test)]
mod properties;
pub mod sentences;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use grammar::{Bound, Clock, Cue, Language, Span, detect_language};

/// What a promise is drafted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftKind {
    /// `kind = "max_age"`: kept at most `max_age` from `timestamp` (and the
    /// fiscal year's end when `end_of_year`), with `grace` for an event that
    /// names no period.
    MaxAge {
        /// The period, as the config writes it.
        max_age: String,
        /// The timestamp field.
        timestamp: String,
        /// Counted from the end of the fiscal year.
        end_of_year: bool,
        /// A grace period, for "when X happens, it goes".
        grace: Option<String>,
    },
    /// `kind = "max_interval"`: the second event within `max` of the first.
    MaxInterval {
        /// The first event's field.
        from: String,
        /// The second event's field.
        to: String,
        /// The period.
        max: String,
    },
    /// `kind = "max_recipients"`, with a placeholder threshold.
    MaxRecipients,
    /// `kind = "contains"` over mail, with a placeholder threshold.
    Contains,
}

/// One drafted rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftRule {
    /// The rule id.
    pub id: String,
    /// The sentence, exactly as in the policy.
    pub policy: String,
    /// Kind and parameters.
    pub kind: DraftKind,
    /// Notes for the admin (a range, a minimum, a default), one per line.
    pub notes: Vec<String>,
    /// What the admin must fill in.
    pub todo: String,
}

/// A sentence that was not drafted as a rule, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// The sentence, exactly as in the policy.
    pub sentence: String,
    /// Why.
    pub reason: String,
}

/// The draft of one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The policy's language.
    pub lang: Language,
    /// Promises drafted as rules.
    pub rules: Vec<DraftRule>,
    /// Promises that cannot be checked as written.
    pub not_checkable: Vec<Passed>,
    /// Sentences that looked like promises but could not be read as one.
    pub ambiguous: Vec<Passed>,
    /// Rights the policy grants (checked by `tillsyn subject` and `erased`
    /// rules, not by a rule per sentence).
    pub rights: Vec<String>,
}

/// Grace given to "when X happens, it goes" when the policy names no period.
const EVENT_GRACE: &str = "30d";

/// Read `text` (in `lang`, or the language it is mostly in) into a draft.
pub fn draft(text: &str, lang: Option<Language>) -> Draft {
    let lang = lang.unwrap_or_else(|| detect_language(text));
    let mut draft = Draft {
        lang,
        rules: Vec::new(),
        not_checkable: Vec::new(),
        ambiguous: Vec::new(),
        rights: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for sentence in sentences::split(text) {
        let context = sentence.context();
        let reading = read(&context, lang);
        // An item that says no more than its lead-in was read with it.
        if let Some(lead_in) = &sentence.lead_in
            && read(lead_in, lang) == reading
        {
            continue;
        }
        // The same sentence twice (policies repeat themselves) is one promise.
        if !seen.insert(sentence.text.clone()) {
            continue;
        }
        match reading {
            Reading::Nothing => {}
            // A heading ("Rätt till radering") grants nothing by itself.
            Reading::Right if sentence.text.split_whitespace().count() < 4 => {}
            Reading::Right => draft.rights.push(sentence.text),
            Reading::Ambiguous(reason) => draft.ambiguous.push(Passed {
                sentence: sentence.text,
                reason: reason.to_owned(),
            }),
            Reading::NotCheckable(reason) => draft.not_checkable.push(Passed {
                sentence: sentence.text,
                reason: reason.to_owned(),
            }),
            Reading::Rule {
                kind,
                notes,
                todo,
                topic,
            } => {
                let mut id = topic.to_owned();
                let mut number = 2;
                while !ids.insert(id.clone()) {
                    id = format!("{topic}-{number}");
                    number += 1;
                }
                draft.rules.push(DraftRule {
                    id,
                    policy: sentence.text,
                    kind,
                    notes,
                    todo,
                });
            }
        }
    }
    draft
}

/// How one sentence reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reading {
    Nothing,
    Right,
    Ambiguous(&'static str),
    NotCheckable(&'static str),
    Rule {
        kind: DraftKind,
        notes: Vec<String>,
        todo: String,
        topic: &'static str,
    },
}

fn read(text: &str, lang: Language) -> Reading {
    match grammar::cue(text, lang) {
        None | Some(Cue::Cookies) => Reading::Nothing,
        Some(Cue::Right) => Reading::Right,
        Some(Cue::OptOut) => Reading::Ambiguous(
            "removal on unsubscribing or a marketing block: a `conflict` rule between the list and the store that records the opt-out; draft it by hand",
        ),
        Some(Cue::Minimise) => Reading::Ambiguous(
            "minimisation with nothing named to measure (no count, no kind of data, no store)",
        ),
        Some(Cue::FewerCopies) => Reading::Rule {
            kind: DraftKind::MaxRecipients,
            notes: vec![
                "The policy names no number of copies: `max` is a placeholder.".into(),
            ],
            todo: "the mail sources and folders (`when = { sources = [...], folders = [\"INBOX\", \"\\\\Sent\"] }`), your own domains in `exclude_domains`, and the threshold `max`".into(),
            topic: "cc-spread",
        },
        Some(Cue::LessMail) => Reading::Rule {
            kind: DraftKind::Contains,
            notes: vec![
                "\"As little as possible\" names no number: `min_count` is a placeholder (one identity number in a message).".into(),
            ],
            todo: "the mail sources and folders whose bodies and attachments are read (`when = { sources = [...], folders = [\"\\\\Sent\"] }`), and the threshold `min_count`".into(),
            topic: "personal-data-by-mail",
        },
        Some(Cue::Deadline) => deadline(text, lang),
        Some(Cue::Retention) => retention(text, lang),
    }
}

/// "Rapporterar inom 72 timmar efter upptäckt": an interval rule.
fn deadline(text: &str, lang: Language) -> Reading {
    let Some(span) = grammar::span(text, lang) else {
        return Reading::Nothing;
    };
    let clock = grammar::clock(text, lang);
    let (from, to, topic, todo) = match clock {
        Some(Clock::Detected) => (
            "date:detected",
            "date:reported",
            "incident-reported",
            "the register of incidents (an http source), with the dates of detection and of the report mapped as `detected` and `reported`",
        ),
        Some(Clock::Requested) => (
            "date:requested",
            "date:answered",
            "request-answered",
            "the register of requests, with the dates a request came and was answered mapped as `requested` and `answered`",
        ),
        _ => (
            "date:started",
            "date:done",
            "deadline",
            "the register that records this deadline, with its two dates mapped as `started` and `done` (rename them to yours)",
        ),
    };
    let mut notes = span_notes(&span);
    if clock.is_none() {
        notes.push("No event starting the clock was recognised: `from` is a placeholder.".into());
    }
    Reading::Rule {
        kind: DraftKind::MaxInterval {
            from: from.into(),
            to: to.into(),
            max: span.period(),
        },
        notes,
        todo: todo.into(),
        topic,
    }
}

/// Kept or deleted: a period, an event, or not checkable as written.
fn retention(text: &str, lang: Language) -> Reading {
    let clock = grammar::clock(text, lang);
    let Some(span) = grammar::span(text, lang) else {
        let unbounded = grammar::not_checkable(text, lang);
        return match clock {
            // "As long as needed" or "for future positions" bound nothing,
            // even beside an event ("… eller så länge det finns en
            // kundrelation").
            Some(clock) if clock.is_event() && !unbounded.is_some_and(|u| u.open_ended()) => {
                let (timestamp, topic, todo) = clock_fields(clock);
                Reading::Rule {
                    kind: DraftKind::MaxAge {
                        max_age: "0d".into(),
                        timestamp: timestamp.into(),
                        end_of_year: false,
                        grace: Some(EVENT_GRACE.into()),
                    },
                    notes: vec![format!(
                        "The policy names no period after the event: the data goes then. `grace` ({EVENT_GRACE}, tillsyn's default) gives the routine time; set your own."
                    )],
                    todo: todo.into(),
                    topic,
                }
            }
            _ => match unbounded {
                Some(unbounded) => Reading::NotCheckable(unbounded.reason(lang)),
                None => Reading::Nothing,
            },
        };
    };
    let clock = clock.unwrap_or(Clock::Received);
    let mail =
        matches!(clock, Clock::Received) && grammar::clock(text, lang) == Some(Clock::Received);
    let (timestamp, topic, todo) = if mail {
        clock_fields(Clock::Received)
    } else if clock == Clock::Received {
        (
            "modified",
            "retention",
            "the sources and places that hold this data (`when = { sources = [...], paths = [...] }`); `timestamp` is a guess: `created` or a date the store keeps may fit better",
        )
    } else {
        clock_fields(clock)
    };
    let mut notes = span_notes(&span);
    if clock == Clock::FiscalYearEnd {
        notes.push("Bookkeeping records count from the end of their fiscal year (`anchor`, with `fiscal_year_end` when it is not 31 December); a share's `path_dates` dates folders filed by year.".into());
    }
    Reading::Rule {
        kind: DraftKind::MaxAge {
            max_age: span.period(),
            timestamp: timestamp.into(),
            end_of_year: clock == Clock::FiscalYearEnd,
            grace: None,
        },
        notes,
        todo: todo.into(),
        topic,
    }
}

/// The timestamp, an id stem and the TODO for a clock.
fn clock_fields(clock: Clock) -> (&'static str, &'static str, &'static str) {
    match clock {
        Clock::Received => (
            "received",
            "mail-age",
            "the mail sources, and the folders the promise is about (`when = { sources = [...], folders = [\"INBOX\"] }`)",
        ),
        Clock::LastActivity => (
            "last_activity",
            "since-last-contact",
            "the CRM endpoint or mail folders that hold the cases, and the pointer to their last-contact date (mapped as `last_activity`)",
        ),
        Clock::PositionFilled => (
            "date:position_filled",
            "after-position-filled",
            "the store that holds applications, and where the position's filled date comes from (a marker file, `markers = [{ file = \"TILLSATT.txt\", date = \"position_filled\" }]`, or a CRM date mapped as `position_filled`)",
        ),
        Clock::CustomerEnded => (
            "date:customer_ended",
            "after-customer-ended",
            "the directory or CRM that holds customers, the date the relationship ended (mapped as `customer_ended`), and the attribute that marks former customers",
        ),
        Clock::FiscalYearEnd => (
            "modified",
            "bookkeeping",
            "the share folders that hold invoices, receipts and other bookkeeping records (`when = { sources = [...], paths = [...] }`)",
        ),
        Clock::CaseClosed => (
            "date:closed",
            "after-case-closed",
            "the CRM endpoint that holds cases, with their closing date mapped as `closed` and the attribute that marks a case closed",
        ),
        Clock::Detected => (
            "date:detected",
            "after-detection",
            "the register that records the detection date (mapped as `detected`)",
        ),
        Clock::Requested => (
            "date:requested",
            "after-request",
            "the register that records the request date (mapped as `requested`)",
        ),
    }
}

/// Notes on a period: a range, a minimum, a routine. (The draft's comments
/// are in English, as the config's are; the quotes stay as the policy has
/// them.)
fn span_notes(span: &Span) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(from) = span.range_from {
        notes.push(format!(
            "The policy gives a range ({from}–{}): the rule takes its upper end.",
            span.amount
        ));
    }
    if span.bound == Bound::Least {
        notes.push("MINIMUM: the policy states a minimum period, not a maximum: the data may be kept at least this long. The rule flags what is kept beyond it; decide whether that breaks the promise, or set the longest period you allow.".into());
    }
    if span.routine {
        notes.push(
            "A routine with a fixed rhythm: at most one period (a month is written 31d).".into(),
        );
    }
    notes
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// `text` as comment lines of at most about 78 characters, each `#` and
/// `indent`.
fn comment(out: &mut String, indent: &str, text: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + word.chars().count() > 76 {
            let _ = writeln!(out, "# {indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "# {indent}{line}");
    }
}

/// The draft as a commented policy pack, made from `policy` (its name, for
/// the header).
pub fn render(draft: &Draft, policy: &str) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        "",
        &format!(
            "Draft policy pack from {policy}, made by `tillsyn draft-rules` ({}). Review every rule: its kind and numbers are tillsyn's reading of the sentence it quotes. The sources and `when` conditions are yours to fill in (each rule's TODO says what); add the [[sources]] below, then run `tillsyn check-config`.",
            match draft.lang {
                Language::Sv => "sv",
                Language::En => "en",
            }
        ),
    );
    out.push_str(
        "\n[daemon]\nstate_dir = \"/var/lib/tillsyn\"\ntimezone = \"Europe/Stockholm\"\n\n",
    );
    comment(
        &mut out,
        "",
        "TODO: the [[sources]] where these promises are kept (mail, shares, directories, CRMs); see config.example.toml. Without `when = { sources = [...] }` a rule checks every source.",
    );
    out.push_str(&render_rules(draft));
    out.push_str(
        "\n# ---------------------------------------------------------------------------\n",
    );
    let checkable = draft.rules.len();
    let not = draft.not_checkable.len();
    comment(
        &mut out,
        "",
        &format!(
            "Summary: {} promises found; {checkable} drafted as rules, {not} not checkable as written, {} ambiguous. {} sentences grant rights.",
            checkable + not,
            draft.ambiguous.len(),
            draft.rights.len()
        ),
    );
    let section = |out: &mut String, title: &str, items: &[Passed]| {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(out, "#\n# {title}");
        for item in items {
            comment(
                out,
                "  ",
                &format!("{} ({})", quoted(&item.sentence), item.reason),
            );
        }
    };
    section(&mut out, "Not checkable as written:", &draft.not_checkable);
    section(
        &mut out,
        "Ambiguous (looked like a promise; not drafted):",
        &draft.ambiguous,
    );
    if !draft.rights.is_empty() {
        out.push_str("#\n# Rights (answered with `tillsyn subject`; erasure verified by an `erased` rule, see config.example.toml):\n");
        for right in &draft.rights {
            comment(&mut out, "  ", &quoted(right));
        }
    }
    out
}

/// The drafted rules alone, each a `[[rules]]` table with its notes and
/// TODO as comments: what [`render`] puts in a pack, and what `tillsyn init`
/// puts in a starting config.
pub fn render_rules(draft: &Draft) -> String {
    let mut out = String::new();
    for rule in &draft.rules {
        out.push_str("\n[[rules]]\n");
        for note in &rule.notes {
            comment(&mut out, "", note);
        }
        comment(&mut out, "", &format!("TODO: {}.", rule.todo));
        let _ = writeln!(out, "id = {}", quoted(&rule.id));
        let kind = match &rule.kind {
            DraftKind::MaxAge { .. } => "max_age",
            DraftKind::MaxInterval { .. } => "max_interval",
            DraftKind::MaxRecipients => "max_recipients",
            DraftKind::Contains => "contains",
        };
        let _ = writeln!(out, "kind = \"{kind}\"");
        let _ = writeln!(out, "policy = {}", quoted(&rule.policy));
        match &rule.kind {
            DraftKind::MaxAge {
                max_age,
                timestamp,
                end_of_year,
                grace,
            } => {
                let _ = writeln!(out, "max_age = {}", quoted(max_age));
                if let Some(grace) = grace {
                    let _ = writeln!(out, "grace = {}", quoted(grace));
                }
                if *end_of_year {
                    let _ = writeln!(out, "anchor = \"end_of_year\"");
                }
                let _ = writeln!(out, "timestamp = {}", quoted(timestamp));
            }
            DraftKind::MaxInterval { from, to, max } => {
                let _ = writeln!(out, "from = {}", quoted(from));
                let _ = writeln!(out, "to = {}", quoted(to));
                let _ = writeln!(out, "max = {}", quoted(max));
            }
            DraftKind::MaxRecipients => {
                out.push_str(
                    "count = \"cc\"\nmax = 3 # TODO: the threshold; the policy names none\n",
                );
            }
            DraftKind::Contains => {
                out.push_str("detectors = [\"personnummer\"]\nmin_confidence = \"medium\"\nmin_count = 1 # TODO: the threshold; the policy names none\n");
            }
        }
    }
    out
}

/// What `tillsyn draft-rules` is asked.
#[derive(Debug, Clone)]
pub struct DraftArgs {
    /// The policy's text file.
    pub policy: std::path::PathBuf,
    /// Its language; detected when not given.
    pub lang: Option<Language>,
    /// Where to write the pack; standard output when not given.
    pub out: Option<std::path::PathBuf>,
}

/// Why a draft could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// The policy could not be read.
    #[error("reading the policy {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The policy is not UTF-8 text.
    #[error("the policy {0} is not UTF-8 text; convert it first (e.g. iconv -f latin1 -t utf-8)")]
    NotText(String),
    /// The pack could not be written.
    #[error("writing the draft to {path}: {error}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
}

/// Draft the rules of `args.policy`; the pack goes to `args.out` or `out`, a
/// one-line summary to `summary`.
pub fn run(
    args: &DraftArgs,
    out: &mut dyn std::io::Write,
    summary: &mut dyn std::io::Write,
) -> Result<(), DraftError> {
    let path = args.policy.display().to_string();
    let bytes = std::fs::read(&args.policy).map_err(|error| DraftError::Read {
        path: path.clone(),
        error,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| DraftError::NotText(path.clone()))?;
    let name = args
        .policy
        .file_name()
        .map_or_else(|| path.clone(), |name| name.to_string_lossy().into_owned());
    let drafted = draft(&text, args.lang);
    let pack = render(&drafted, &name);
    let written = match &args.out {
        Some(target) => std::fs::write(target, &pack).map_err(|error| DraftError::Write {
            path: target.display().to_string(),
            error,
        }),
        None => out
            .write_all(pack.as_bytes())
            .map_err(|error| DraftError::Write {
                path: "standard output".into(),
                error,
            }),
    };
    written?;
    let _ = writeln!(
        summary,
        "{} rules drafted, {} promises not checkable as written, {} ambiguous sentences{}",
        drafted.rules.len(),
        drafted.not_checkable.len(),
        drafted.ambiguous.len(),
        args.out.as_ref().map_or_else(String::new, |target| format!(
            "; written to {}",
            target.display()
        ))
    );
    Ok(())
}
