//! Findings and scan results as people and programs read them: an aligned table, or
//! JSON Lines (one finding per line). Custodians pass through [`PersonDisplay`], so
//! output never names a person unless the config says so.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::privacy::PersonDisplay;
use crate::runner::ScanOutcome;
use tillsyn_store::{Finding, ScanStatus};

/// Output format for findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// JSON Lines: one finding per line.
    Json,
}

/// One finding as printed in JSON.
#[derive(Debug, Serialize)]
pub struct FindingLine<'a> {
    /// The finding's id in the store (`tillsyn explain ID`).
    pub id: i64,
    /// Rule id.
    pub rule: &'a str,
    /// Source name.
    pub source: &'a str,
    /// Severity.
    pub severity: &'a str,
    /// Where the record is: relative path, or `account/folder/name` for mail,
    /// with the parts that name a person pseudonymised per `[privacy]`.
    pub record: String,
    /// Record kind.
    pub kind: &'a str,
    /// Custodian, named or pseudonymised per `[privacy]`.
    pub custodian: String,
    /// Days since the rule's timestamp.
    pub age_days: Option<i64>,
    /// What was measured.
    pub detail: &'a str,
    /// The promise, quoted.
    pub policy: &'a str,
    /// First seen, RFC 3339.
    pub first_seen: String,
    /// Resolved, RFC 3339, if it has been.
    pub resolved_at: Option<String>,
    /// The exception ("dispens") it is kept under now, if one is in force:
    /// then it does not count as broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excepted: Option<ExceptedLine>,
}

/// An exception as a finding line shows it.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct ExceptedLine {
    /// The exception's id.
    pub id: String,
    /// Why the data is kept.
    pub reason: String,
    /// Its last day, as configured.
    pub until: String,
}

/// Write findings to `out`. `policies` maps rule id to the quoted promise.
pub fn write_findings(
    out: &mut dyn Write,
    format: Format,
    findings: &[Finding],
    policies: &BTreeMap<String, String>,
    custodians: &PersonDisplay,
    exceptions: &tillsyn_rules::exceptions::Exceptions,
) -> std::io::Result<()> {
    // One page: the whole slice (borrowed, not copied), then nothing.
    let mut pages = |after: Option<&Finding>| -> std::io::Result<Cow<'_, [Finding]>> {
        Ok(Cow::Borrowed(match after {
            None => findings,
            Some(_) => &[],
        }))
    };
    write_findings_paged(out, format, &mut pages, policies, custodians, exceptions)
}

/// Findings read a page at a time: given the last finding of the previous
/// page (`None` for the first), the next page, empty when there are no more.
/// A page is borrowed where the findings are at hand, owned where read.
pub type FindingPages<'s, 'p> =
    dyn FnMut(Option<&Finding>) -> std::io::Result<Cow<'s, [Finding]>> + 'p;

/// [`write_findings`] for findings read a page at a time, so that listing
/// many holds one page of findings in memory (the table also holds its own
/// rendered text until the columns' widths are known).
pub fn write_findings_paged(
    out: &mut dyn Write,
    format: Format,
    pages: &mut FindingPages<'_, '_>,
    policies: &BTreeMap<String, String>,
    custodians: &PersonDisplay,
    exceptions: &tillsyn_rules::exceptions::Exceptions,
) -> std::io::Result<()> {
    let now = chrono::Utc::now();
    // An open finding under an exception in force: which, why, until when.
    let excepted = |finding: &Finding| {
        let id = finding
            .resolved_at
            .is_none()
            .then(|| finding.excepted_at(now))??;
        if id == tillsyn_store::CUSTODIAN_MARK_EXCEPTION {
            return Some(ExceptedLine {
                id: id.to_owned(),
                reason: "marked by custodian".to_owned(),
                until: "while marked".to_owned(),
            });
        }
        let exception = exceptions.get(id);
        Some(ExceptedLine {
            id: id.to_owned(),
            reason: exception.map_or_else(String::new, |e| e.config.reason.clone()),
            until: exception.map_or_else(String::new, |e| e.config.until.clone()),
        })
    };
    // Few custodians, many findings: each pseudonym is computed once.
    let mut shown: std::collections::HashMap<Option<String>, String> = Default::default();
    let mut show = |custodian: Option<&str>| -> String {
        shown
            .entry(custodian.map(str::to_owned))
            .or_insert_with(|| custodians.show(custodian))
            .clone()
    };
    let mut out = std::io::BufWriter::new(out);
    let out: &mut dyn Write = &mut out;
    match format {
        Format::Json => {
            let mut page = pages(None)?;
            while !page.is_empty() {
                for finding in page.iter() {
                    let line = FindingLine {
                        id: finding.id,
                        rule: &finding.rule,
                        source: &finding.source,
                        severity: &finding.severity,
                        record: custodians.record(
                            &finding.source,
                            &finding.record_kind,
                            &finding.record_path,
                            finding.custodian.as_deref(),
                        ),
                        kind: &finding.record_kind,
                        custodian: show(finding.custodian.as_deref()),
                        age_days: finding.age_days,
                        detail: &finding.detail,
                        policy: policies
                            .get(&finding.rule)
                            .map(String::as_str)
                            .unwrap_or("(rule no longer in the config)"),
                        first_seen: finding.first_seen.to_rfc3339(),
                        resolved_at: finding.resolved_at.map(|time| time.to_rfc3339()),
                        excepted: excepted(finding),
                    };
                    serde_json::to_writer(&mut *out, &line)?;
                    out.write_all(b"\n")?;
                }
                page = pages(page.last())?;
            }
            Ok(())
        }
        Format::Table => {
            let header = [
                "ID",
                "SEVERITY",
                "RULE",
                "SOURCE",
                "AGE",
                "CUSTODIAN",
                "RECORD",
            ];
            let mut row = |finding: &Finding| -> [String; 7] {
                [
                    finding.id.to_string(),
                    finding.severity.clone(),
                    finding.rule.clone(),
                    finding.source.clone(),
                    finding
                        .age_days
                        .map(|days| format!("{days}d"))
                        .unwrap_or_else(|| "-".into()),
                    show(finding.custodian.as_deref()),
                    {
                        let record = custodians.record(
                            &finding.source,
                            &finding.record_kind,
                            &finding.record_path,
                            finding.custodian.as_deref(),
                        );
                        match excepted(finding) {
                            Some(line) => format!(
                                "{record}  [excepted: {} until {}: {}]",
                                line.id, line.until, line.reason
                            ),
                            None => record,
                        }
                    },
                ]
            };
            // One pass over the findings renders every row once, held as
            // the table's text (about its printed size, not the findings)
            // until the columns' widths are known.
            let mut widths = header.map(str::len);
            let mut text = String::new();
            let mut cell_ends: Vec<usize> = Vec::new();
            let mut page = pages(None)?;
            while !page.is_empty() {
                for finding in page.iter() {
                    for (width, cell) in widths.iter_mut().zip(row(finding)) {
                        *width = (*width).max(cell.chars().count());
                        text.push_str(&cell);
                        cell_ends.push(text.len());
                    }
                }
                page = pages(page.last())?;
            }
            if cell_ends.is_empty() {
                return writeln!(out, "No findings.");
            }
            let print = |out: &mut dyn Write, cells: [&str; 7]| -> std::io::Result<()> {
                let mut line = String::new();
                for (index, cell) in cells.iter().enumerate() {
                    if index == cells.len() - 1 {
                        line.push_str(cell);
                    } else {
                        let pad = widths[index].saturating_sub(cell.chars().count());
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad + 2));
                    }
                }
                writeln!(out, "{}", line.trim_end())
            };
            print(out, header)?;
            let mut start = 0;
            for ends in cell_ends.chunks(header.len()) {
                let mut cells = [""; 7];
                for (cell, &end) in cells.iter_mut().zip(ends) {
                    *cell = text.get(start..end).unwrap_or_default();
                    start = end;
                }
                print(out, cells)?;
            }
            Ok(())
        }
    }
}

/// One line per scanned source: how it ended and what it changed. Notes and
/// errors pass through `custodians`, as they may name an account.
pub fn describe_outcome(outcome: &ScanOutcome, custodians: &PersonDisplay) -> String {
    let mut line = format!(
        "{}: {}, {} records, {} findings ({} new, {} resolved, {} open)",
        outcome.source,
        match outcome.status {
            ScanStatus::Complete => "scanned",
            ScanStatus::Partial => "PARTIAL (some places unreadable; findings there kept open)",
            ScanStatus::Failed => "FAILED (nothing resolved; earlier findings kept open)",
            ScanStatus::Running => "still running",
        },
        outcome.records,
        outcome.findings,
        outcome.tally.new,
        outcome.tally.resolved,
        outcome.tally.open,
    );
    let problems: u64 = outcome.problems.iter().map(|(_, count)| count).sum();
    if problems > 0 {
        let list: Vec<String> = outcome
            .problems
            .iter()
            .map(|(kind, count)| format!("{} {count}", kind.as_str()))
            .collect();
        line.push_str(&format!("; {problems} problems: {}", list.join(", ")));
    }
    if !outcome.work.is_empty() {
        let list: Vec<String> = outcome
            .work
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        line.push_str(&format!("; work: {}", list.join(", ")));
    }
    for note in &outcome.notes {
        line.push_str(&format!(
            "\n  {}: {}",
            outcome.source,
            custodians.text(note)
        ));
    }
    if let Some((kind, message)) = &outcome.error {
        line.push_str(&format!("; error [{kind}]: {}", custodians.text(message)));
    }
    line
}

/// Rows as CSV that spreadsheets open safely: a header row, CRLF line endings
/// (RFC 4180), and every cell that a spreadsheet would run as a formula
/// neutralised (see [`neutralise`]). Record paths and other cells come from
/// what users named, so none of them may start a formula.
pub fn spreadsheet_csv<I, R>(rows: I) -> Result<Vec<u8>, csv::Error>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<str>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for row in rows {
        writer.write_record(
            row.into_iter()
                .map(|cell| neutralise(cell.as_ref()).into_owned()),
        )?;
    }
    writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}

/// Serialisable rows (a header row from their field names) as
/// [`spreadsheet_csv`].
pub fn spreadsheet_csv_of<T: Serialize>(rows: &[T]) -> Result<Vec<u8>, csv::Error> {
    let mut plain = csv::Writer::from_writer(Vec::new());
    for row in rows {
        plain.serialize(row)?;
    }
    let plain = plain
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))?;
    let records = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(plain.as_slice())
        .into_records()
        .collect::<Result<Vec<csv::StringRecord>, _>>()?;
    spreadsheet_csv(records.iter().map(|record| record.iter()))
}

/// A cell as a spreadsheet shows it but never runs it: one that begins with
/// `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (the
/// OWASP advice against CSV injection). Others are as they were.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_would_run_as_formulas_are_neutralised_and_rows_end_in_crlf() {
        for (cell, shown) in [
            ("=1+2", "'=1+2"),
            ("+46 70", "'+46 70"),
            ("-3", "'-3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("Kunder/=x", "Kunder/=x"),
            ("", ""),
        ] {
            assert_eq!(neutralise(cell), shown);
        }
        let csv = spreadsheet_csv([["a", "=b"], ["c,d", "e"]]).expect("csv");
        assert_eq!(csv, b"a,'=b\r\n\"c,d\",e\r\n");
    }
}
