//! Reading the API into records: page after page (links, page numbers,
//! offsets, cursors), each item mapped to a record, whole or changes only.

use super::HttpSource;
use super::checkpoint::{HttpCheckpoint, KEY};
use super::config::Pagination;
use super::transport::{failed, same_origin, shown};
use crate::values::{NotADate, ValueMapping};
use crate::{Connector, ConnectorError, ProblemKind, Record, RecordSink, ScanContext, ScanReport};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tillsyn_core::dates::{DateFormat, DateValue};

/// `Link: <https://…?page=2>; rel="next", <…>; rel="last"` → the next URL.
pub(crate) fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let rel_next = params.split(';').any(|param| {
                let param = param.trim().to_lowercase();
                param == "rel=\"next\"" || param == "rel=next"
            });
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            rel_next.then(|| target.to_owned())
        })
}

/// A JSON value as attribute text: strings as they are, arrays joined with `;`.
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Array(values) => Some(
            values
                .iter()
                .filter_map(text_of)
                .collect::<Vec<_>>()
                .join(";"),
        ),
        other => Some(other.to_string()),
    }
}

/// Every text in a JSON value: a string, each of an array's, or a number or
/// flag as written.
pub(super) fn texts_of(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::String(text) => vec![text.clone()],
        Value::Array(values) => values.iter().flat_map(texts_of).collect(),
        other => vec![other.to_string()],
    }
}

/// The date a JSON value holds as `mapping` reads it: a number with an
/// automatic format is Unix seconds (milliseconds past 10^11).
pub(super) fn json_date(
    value: &Value,
    mapping: &ValueMapping,
    zone: chrono_tz::Tz,
) -> Result<Option<DateValue>, NotADate> {
    if let (Value::Number(number), None, DateFormat::Auto) =
        (value, &mapping.pattern, mapping.format)
    {
        let number = number.as_i64().ok_or(NotADate)?;
        let (seconds, millis) = if number.abs() > 100_000_000_000 {
            (number.div_euclid(1000), number.rem_euclid(1000))
        } else {
            (number, 0)
        };
        return DateTime::from_timestamp(seconds, (millis * 1_000_000) as u32)
            .map(|time| Some(DateValue::At(time)))
            .ok_or(NotADate);
    }
    let texts = texts_of(value);
    mapping.date(texts.iter().map(String::as_str), zone)
}

/// RFC 3339, `YYYY-MM-DD` (midnight in `zone`, the one date policy), or
/// Unix seconds (number or digits).
pub(crate) fn parse_json_time(value: &Value, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(number) => DateTime::from_timestamp(number.as_i64()?, 0),
        Value::String(text) => {
            let text = text.trim();
            if let Some(time) = tillsyn_core::dates::instant(text, zone) {
                return Some(time);
            }
            text.parse::<i64>()
                .ok()
                .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        }
        _ => None,
    }
}

impl HttpSource {
    pub(super) fn record(
        &self,
        context: &ScanContext,
        item: &Value,
        where_: &str,
        index: usize,
        report: &mut ScanReport,
    ) -> Result<Record, ConnectorError> {
        let config = &self.config;
        let id = item
            .pointer(&config.id)
            .and_then(text_of)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                failed(
                    "protocol",
                    format!(
                        "{where_}: item {index} has no {} (the mapped id)",
                        config.id
                    ),
                )
            })?;
        let mut record = Record::new(config.kind, context.source.clone(), id);
        record.custodian = config
            .custodian
            .as_ref()
            .and_then(|pointer| item.pointer(pointer))
            .and_then(text_of);
        for (name, mapping) in &config.attributes {
            let Some(value) = item.pointer(&mapping.from) else {
                continue;
            };
            let text = match (&mapping.pattern, mapping.flag) {
                (None, None) => text_of(value),
                _ => {
                    let values = texts_of(value);
                    let picked = mapping.all(values.iter().map(String::as_str));
                    (!picked.is_empty()).then(|| picked.join(";"))
                }
            };
            if let Some(text) = text {
                record.attributes.insert(name.clone(), text);
            }
        }
        for (name, mapping) in &config.dates {
            let date = match item.pointer(&mapping.from) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => json_date(value, mapping, context.timezone),
            };
            match date {
                Ok(None | Some(DateValue::Never)) => {}
                Ok(Some(DateValue::At(time))) => {
                    record.dates.insert(name.clone(), time);
                }
                // Without the date no rule can judge the record: its
                // findings stay open (the scan is partial for it).
                Err(NotADate) => {
                    report.count(ProblemKind::BadDate);
                    report.unread_prefixes.push(record.path.clone());
                }
            }
        }
        record.timestamps.last_activity = config
            .last_activity
            .as_ref()
            .and_then(|pointer| item.pointer(pointer))
            .and_then(|value| parse_json_time(value, context.timezone));
        if let Some(plan) = &context.content {
            record.content = plan.fields(&record);
        }
        Ok(record)
    }
}

impl Connector for HttpSource {
    async fn scan(
        &self,
        context: ScanContext,
        mut sink: RecordSink,
    ) -> Result<ScanReport, ConnectorError> {
        let config = &self.config;
        let first = reqwest::Url::parse(&config.url)
            .map_err(|error| failed("protocol", format!("url: {error}")))?;
        let mut first = first;
        let plan = self.plan_fingerprint(&context);
        let now = Utc::now().timestamp();
        let previous = self.previous(&context, &plan, now);
        let since = previous.as_ref().map(|last| last.since.clone());
        if let (Some(since), Some(incremental)) = (&since, &config.incremental) {
            first
                .query_pairs_mut()
                .append_pair(&incremental.param, since);
        }
        // The newest change time seen (parsed, and as the API wrote it), and the
        // ids read, which an incremental read judges again.
        let mut newest: Option<(DateTime<Utc>, String)> = since.as_ref().and_then(|text| {
            parse_json_time(&Value::String(text.clone()), context.timezone)
                .map(|t| (t, text.clone()))
        });
        let mut every_item_dated = true;
        let mut read: Vec<String> = Vec::new();
        let mut report = ScanReport::default();
        let mut next = Some(first.clone());
        let mut page: u64 = 0;
        let mut offset: u64 = 0;
        let mut items_read: u64 = 0;
        // The item count the server announced, once it has.
        let mut expected: Option<u64> = None;
        while let Some(url) = next.take() {
            if context.cancel.is_cancelled() {
                return Err(ConnectorError::Cancelled);
            }
            page += 1;
            if page > config.max_pages {
                return Err(failed(
                    "protocol",
                    format!("more than max_pages = {} pages", config.max_pages),
                ));
            }
            let mut url = url;
            config.pagination.ask_for(&mut url, page, offset);
            let (headers, body) = self.get(&url, page, &mut report).await?;
            let where_ = format!("page {page} ({})", shown(&url));
            let document: Value = serde_json::from_slice(&body)
                .map_err(|error| failed("protocol", format!("{where_}: not JSON ({error})")))?;
            let items = if config.items.is_empty() {
                Some(&document)
            } else {
                document.pointer(&config.items)
            };
            let Some(Value::Array(items)) = items else {
                return Err(failed(
                    "protocol",
                    format!(
                        "{where_}: no array at {:?} (the mapped items)",
                        config.items
                    ),
                ));
            };
            for (index, item) in items.iter().enumerate() {
                let record = self.record(&context, item, &where_, index, &mut report)?;
                if let Some(incremental) = &config.incremental {
                    let changed = item.pointer(&incremental.field);
                    match changed.and_then(|value| {
                        parse_json_time(value, context.timezone).zip(text_of(value))
                    }) {
                        Some((time, text)) => {
                            if newest.as_ref().is_none_or(|(newest, _)| time > *newest) {
                                newest = Some((time, text));
                            }
                        }
                        None => every_item_dated = false,
                    }
                }
                if since.is_some() {
                    read.push(record.path.clone());
                }
                sink.send(record).await?;
                report.records += 1;
            }
            report.add_work("pages", 1);
            let count = items.len() as u64;
            items_read += count;
            let header_total = headers
                .get("x-total-count")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok());
            let total_items = |pointer: &Option<String>| {
                pointer
                    .as_deref()
                    .and_then(|pointer| document.pointer(pointer))
                    .and_then(Value::as_u64)
                    .or(header_total)
            };
            next = match &config.pagination {
                Pagination::None => None,
                Pagination::Page {
                    total, total_pages, ..
                } => {
                    let pages = total_pages
                        .as_deref()
                        .and_then(|pointer| document.pointer(pointer))
                        .and_then(Value::as_u64);
                    expected = total_items(total).or(expected);
                    let more = match (expected, pages) {
                        _ if count == 0 => false,
                        (Some(total), _) => items_read < total,
                        (None, Some(pages)) => page < pages,
                        (None, None) => true,
                    };
                    more.then(|| first.clone())
                }
                Pagination::Offset { total, .. } => {
                    offset += count;
                    expected = total_items(total).or(expected);
                    let more = match expected {
                        _ if count == 0 => false,
                        Some(total) => items_read < total,
                        None => true,
                    };
                    more.then(|| first.clone())
                }
                Pagination::Cursor {
                    param,
                    next,
                    last_item,
                    has_more,
                } => {
                    let more = has_more.as_deref().is_none_or(|pointer| {
                        document.pointer(pointer).and_then(Value::as_bool) == Some(true)
                    });
                    let cursor = match last_item {
                        Some(pointer) => items.last().and_then(|item| item.pointer(pointer)),
                        None => document.pointer(next),
                    };
                    match cursor.and_then(text_of).filter(|cursor| !cursor.is_empty()) {
                        Some(cursor) if more => {
                            let mut url = first.clone();
                            url.query_pairs_mut().append_pair(param, &cursor);
                            Some(url)
                        }
                        // More promised, but nothing to ask for it by.
                        None if more && has_more.is_some() => {
                            return Err(failed(
                                "protocol",
                                format!("{where_}: `has_more` is true but no cursor to go on from"),
                            ));
                        }
                        _ => None,
                    }
                }
                Pagination::Link => match next_link(&headers) {
                    None => None,
                    Some(link) => Some(same_origin(&url, &first, &link, &where_)?),
                },
                Pagination::NextUrl { next } => match document
                    .pointer(next)
                    .and_then(text_of)
                    .filter(|link| !link.is_empty())
                {
                    None => None,
                    Some(link) => Some(same_origin(&url, &first, &link, &where_)?),
                },
            };
        }
        if let Some(total) = expected
            && items_read < total
        {
            return Err(failed(
                "incomplete",
                format!(
                    "the API said it holds {total} items but gave {items_read} before its last page; the read is not complete"
                ),
            ));
        }
        sink.flush().await?;
        if config.incremental.is_some() && every_item_dated {
            let full_at = match &previous {
                Some(last) if since.is_some() => last.full_at,
                _ => now,
            };
            if let Some((_, newest)) = newest {
                crate::checkpoint::store(
                    &mut report.checkpoints,
                    KEY,
                    &plan,
                    &HttpCheckpoint {
                        full_at,
                        since: newest,
                    },
                );
            }
        }
        if since.is_some() {
            read.sort();
            read.dedup();
            report.add_work("incremental", 1);
            report.carried.push(crate::CarriedScope {
                prefix: String::new(),
                gone: read,
                present: None,
                left_out: None,
            });
        }
        Ok(report)
    }
}

impl HttpSource {
    /// What the reads serve: the rules and the mapping.
    pub(super) fn plan_fingerprint(&self, context: &ScanContext) -> String {
        let config = &self.config;
        tillsyn_core::fingerprint::Fingerprint::new("http plan")
            .number(context.needs.plan)
            .text(&config.url)
            .text(&config.items)
            .text(&config.id)
            .optional(config.custodian.as_deref())
            .debug(&config.attributes)
            .debug(&config.dates)
            .optional(config.last_activity.as_deref())
            .hex()
    }
}
