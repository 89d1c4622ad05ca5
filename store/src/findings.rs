//! Findings as the commands and the report read them, and the exception
//! marks on them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::db::{self, Database, Value};
use crate::{
    CUSTODIAN_MARK_EXCEPTION, FINDING_COLUMNS, Finding, FindingFilter, FindingQuery, OpenGroup,
    Store, StoreError, finding_row, to_time,
};

impl Store {
    /// How many findings of `source` are open now and count as broken.
    pub fn open_count(&self, source: &str) -> Result<u64, StoreError> {
        open_count(self.db(), source, Utc::now())
    }

    /// Findings, newest rule/source/record order, optionally for one source and
    /// only those seen by one scan.
    pub fn findings(
        &self,
        filter: FindingFilter,
        source: Option<&str>,
        seen_by_scan: Option<i64>,
    ) -> Result<Vec<Finding>, StoreError> {
        self.query(&FindingQuery {
            filter,
            source: source.map(str::to_owned),
            seen_by_scan,
            ..FindingQuery::default()
        })
    }

    /// Findings that match `query`, in rule/source/record order.
    pub fn query(&self, query: &FindingQuery) -> Result<Vec<Finding>, StoreError> {
        let state = match query.filter {
            FindingFilter::Open => "resolved_at IS NULL",
            FindingFilter::Resolved => "resolved_at IS NOT NULL",
            FindingFilter::All => "TRUE",
        };
        // Open findings are unique by (rule, source, record): ordered so,
        // they need no tie-break.
        let order = match query.filter {
            FindingFilter::Open => "rule, source, record_id",
            FindingFilter::Resolved | FindingFilter::All => "rule, source, record_id, id",
        };
        let sql = format!(
            "SELECT {FINDING_COLUMNS}
             FROM findings
             WHERE {state} AND (CAST($1 AS TEXT) IS NULL OR source = $1)
                 AND (CAST($2 AS BIGINT) IS NULL OR last_seen_scan = $2)
                 AND (CAST($3 AS TEXT) IS NULL OR rule = $3) AND (CAST($4 AS BIGINT) IS NULL OR first_seen >= $4)
                 AND (CAST($5 AS BIGINT) IS NULL OR id = $5)
             ORDER BY {order}"
        );
        self.db()
            .query(
                &sql,
                &[
                    Value::from(query.source.clone()),
                    Value::from(query.seen_by_scan),
                    Value::from(query.rule.clone()),
                    Value::from(query.since.map(|since| since.timestamp())),
                    Value::from(query.id),
                ],
            )?
            .iter()
            .map(|row| Ok(finding_row(row)?))
            .collect()
    }

    /// Open findings of `source` in rule and record order, at most `limit`,
    /// after `after` (the last of the page before): a listing of many read a
    /// page at a time.
    pub fn open_findings_page(
        &self,
        source: &str,
        after: Option<&Finding>,
        limit: usize,
    ) -> Result<Vec<Finding>, StoreError> {
        // Open findings are unique by (source, rule, record): a page is a
        // range of that index, read in its order with nothing to sort.
        let limit = Value::from(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = match after {
            None => self.db().query(
                &format!(
                    "SELECT {FINDING_COLUMNS}
                     FROM findings
                     WHERE resolved_at IS NULL AND source = $1
                     ORDER BY rule, record_id
                     LIMIT $2"
                ),
                &[Value::from(source), limit],
            )?,
            Some(last) => self.db().query(
                &format!(
                    "SELECT {FINDING_COLUMNS}
                     FROM findings
                     WHERE resolved_at IS NULL AND source = $1
                         AND (rule, record_id) > ($2, $3)
                     ORDER BY rule, record_id
                     LIMIT $4"
                ),
                &[
                    Value::from(source),
                    Value::from(last.rule.as_str()),
                    Value::from(last.record_id.as_str()),
                    limit,
                ],
            )?,
        };
        rows.iter().map(|row| Ok(finding_row(row)?)).collect()
    }

    /// One finding by id.
    pub fn finding(&self, id: i64) -> Result<Option<Finding>, StoreError> {
        Ok(self
            .query(&FindingQuery {
                filter: FindingFilter::All,
                id: Some(id),
                ..FindingQuery::default()
            })?
            .pop())
    }

    /// Open findings per rule and source at `now`, with the earliest
    /// `first_seen` among those counted as broken: what the metrics show as
    /// open violations and their age. Findings under an exception in force
    /// are counted apart (`excepted`), not as broken.
    pub fn open_summary(&self, now: DateTime<Utc>) -> Result<Vec<OpenGroup>, StoreError> {
        let rows = self.db().query(
            "SELECT rule, source,
                    sum(CASE WHEN coalesce(excepted_until, 0) > $1 THEN 0 ELSE 1 END),
                    min(CASE WHEN coalesce(excepted_until, 0) > $1 THEN NULL ELSE first_seen END),
                    sum(CASE WHEN coalesce(excepted_until, 0) > $1 THEN 1 ELSE 0 END)
             FROM findings
             WHERE resolved_at IS NULL GROUP BY rule, source ORDER BY rule, source",
            &[Value::from(now.timestamp())],
        )?;
        let mut groups: BTreeMap<(String, String), OpenGroup> = BTreeMap::new();
        for row in &rows {
            let group = OpenGroup {
                rule: row.text(0)?,
                source: row.text(1)?,
                count: row.int(2)?.max(0) as u64,
                oldest_first_seen: row.opt_int(3)?.map(to_time),
                excepted: row.int(4)?.max(0) as u64,
                checked: None,
            };
            groups.insert((group.rule.clone(), group.source.clone()), group);
        }
        // Every pair with a count, findings or not: a rule kept everywhere
        // still shows what it checked.
        let counted = self
            .db()
            .query("SELECT rule, source, records FROM checked_counts", &[])?;
        for row in &counted {
            let (rule, records) = (row.text(0)?, row.int(2)?.max(0) as u64);
            // A source scanned unit by unit counts in each unit's row.
            let source = tillsyn_core::unit::whole_source(&row.text(1)?).to_owned();
            let checked = &mut groups
                .entry((rule.clone(), source.clone()))
                .or_insert(OpenGroup {
                    rule,
                    source,
                    count: 0,
                    oldest_first_seen: None,
                    excepted: 0,
                    checked: None,
                })
                .checked;
            *checked = Some(checked.unwrap_or(0) + records);
        }
        Ok(groups.into_values().collect())
    }

    /// Take every exception mark but custodians' off the open findings (of
    /// `source`, or of every source): what applying no exceptions comes to.
    pub fn clear_exceptions(&mut self, source: Option<&str>) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE findings SET exception = NULL, excepted_until = NULL
             WHERE exception IS NOT NULL AND exception != $2 AND resolved_at IS NULL
                 AND (CAST($1 AS TEXT) IS NULL OR source = $1)",
            &[Value::from(source), Value::from(CUSTODIAN_MARK_EXCEPTION)],
        )?;
        Ok(())
    }

    /// Mark the open findings (of `source`, or of all) with `exceptions`:
    /// each with the first exception, in config order, that covers it.
    /// Returns how many open findings each covers, by id.
    pub fn mark_exceptions(
        &mut self,
        exceptions: &tillsyn_rules::exceptions::Exceptions,
        source: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        // None configured (the usual case): only marks left by earlier
        // exceptions go, found by their index, without reading every finding.
        if exceptions.is_empty() {
            self.clear_exceptions(source)?;
            return Ok(BTreeMap::new());
        }
        self.apply_exceptions(source, |rule, source, path| {
            exceptions
                .covering(rule, source, path)
                .map(|exception| (exception.config.id.clone(), exception.ends))
        })
    }

    /// Mark the open findings (of `source`, or of every source) with the
    /// exception that covers them, as `covering` says (its id and end), and
    /// clear the mark where none does any more. Returns how many open
    /// findings each exception covers, by id.
    pub fn apply_exceptions(
        &mut self,
        source: Option<&str>,
        covering: impl Fn(&str, &str, &str) -> Option<(String, DateTime<Utc>)>,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        db::transaction(self.db(), true, |db| {
            let mut covered: BTreeMap<String, u64> = BTreeMap::new();
            let rows = db.query(
                "SELECT id, rule, source, record_path, exception, excepted_until FROM findings
                 WHERE resolved_at IS NULL AND (CAST($1 AS TEXT) IS NULL OR source = $1)",
                &[Value::from(source)],
            )?;
            for row in &rows {
                let (id, rule, source, path) =
                    (row.int(0)?, row.text(1)?, row.text(2)?, row.text(3)?);
                // Its mark: exception, end.
                let stored = row.opt_text(4)?.zip(row.opt_int(5)?);
                // A custodian's mark is the custodian's to set and take back: the
                // scan that reads the record decides it.
                if stored
                    .as_ref()
                    .is_some_and(|(exception, _)| exception == CUSTODIAN_MARK_EXCEPTION)
                {
                    continue;
                }
                let wanted = covering(&rule, &source, &path)
                    .map(|(exception, ends)| (exception, ends.timestamp()));
                if let Some((exception, _)) = &wanted {
                    *covered.entry(exception.clone()).or_insert(0) += 1;
                }
                if stored != wanted {
                    let (exception, until) = wanted.unzip();
                    db.execute(
                        "UPDATE findings SET exception = $2, excepted_until = $3 WHERE id = $1",
                        &[Value::from(id), Value::from(exception), Value::from(until)],
                    )?;
                }
            }
            Ok(covered)
        })
    }
}

/// How many findings of `source` are open at `now` and count as broken (under
/// no exception in force).
pub(crate) fn open_count(
    database: &dyn Database,
    source: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let open = database
        .query(
            "SELECT count(*) FROM findings WHERE source = $1 AND resolved_at IS NULL
                 AND NOT coalesce(excepted_until, 0) > $2",
            &[Value::from(source), Value::from(now.timestamp())],
        )?
        .first()
        .map(|row| row.int(0))
        .transpose()?
        .unwrap_or(0);
    Ok(open.max(0) as u64)
}
