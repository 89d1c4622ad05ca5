//! Records checked per rule: the denominators of the report's rates ("19,613
//! of 21,224 messages (92 %) in 6 of 9 mailboxes") and of the
//! `tillsyn_checked_records` gauge.
//!
//! A scan does not always read every record. Incremental reads carry what did
//! not change ([`CarriedScope`]), the record cache leaves out unchanged files,
//! and an IMAP server's search hands over only the candidates of an age rule.
//! So the scan runner remembers, for each record it judged, which rules checked
//! it (one bit per rule) and who owns it, by keyed hashes only (the record's
//! folder and path as [`PathHasher::key`], its custodian as a hash), never by
//! name. A scan's count is what it judged plus what it carried of that memory.
//!
//! Places a connector counted without reading every record
//! ([`PlaceTotal`]: an IMAP folder) count from their totals instead: each
//! record there counts for every rule whose place conditions (kind, folder,
//! path) take the place in; record attributes are not asked there, since the
//! records were not all read.
//!
//! The memory is kept under the rules' fingerprint. Without it (the first scan,
//! rules changed, a memory that cannot be read) a scan that carried records it
//! cannot count says so: its counts are marked incomplete, and the report
//! writes "at least". After a partial scan, the records remembered under the
//! places it could not read are kept as they were.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use tillsyn_connectors::record_cache::PathHasher;
use tillsyn_connectors::{CarriedScope, LeftOut, PlaceTotal, Record, ScanReport};

use crate::{CHECKED_RULES, SourceRules};

/// The layout of [`Memory::encode`]: part of the plan a memory is kept under.
pub const FORMAT: u32 = 1;

/// Bytes per record in [`Memory::encode`].
const RECORD_BYTES: usize = 32;

/// One remembered record: where it is, who owns it, which rules checked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedRecord {
    /// [`PathHasher::key`] of its path.
    pub key: u128,
    /// Keyed hash of its custodian; 0 for none.
    pub custodian: u64,
    /// Bit `i`: rule `i` of the source checked it ([`SourceRules::checking`]).
    pub rules: u64,
}

/// What a source's scans remember of the records they judged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Sorted by key, keys unique.
    pub records: Vec<CheckedRecord>,
    /// Per folder hash: the hashes of the record-path prefixes it lies under
    /// (`""`, each ancestor, and itself), to tell which carried place or
    /// unread prefix a remembered record is in.
    pub folders: BTreeMap<u64, Vec<u64>>,
}

/// Why a stored memory could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("checked-records memory: {0}")]
pub struct DecodeError(&'static str);

impl Memory {
    /// The memory as bytes, to store.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16 + self.records.len() * RECORD_BYTES);
        bytes.extend_from_slice(&(self.folders.len() as u64).to_le_bytes());
        for (folder, prefixes) in &self.folders {
            bytes.extend_from_slice(&folder.to_le_bytes());
            bytes.extend_from_slice(&(prefixes.len() as u64).to_le_bytes());
            for prefix in prefixes {
                bytes.extend_from_slice(&prefix.to_le_bytes());
            }
        }
        bytes.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        for record in &self.records {
            bytes.extend_from_slice(&record.key.to_le_bytes());
            bytes.extend_from_slice(&record.custodian.to_le_bytes());
            bytes.extend_from_slice(&record.rules.to_le_bytes());
        }
        bytes
    }

    /// A memory stored by [`Memory::encode`]; an error for anything else.
    pub fn decode(bytes: &[u8]) -> Result<Memory, DecodeError> {
        let mut reader = Reader { bytes };
        let folder_count = reader.word()?;
        let mut folders = BTreeMap::new();
        for _ in 0..folder_count {
            let folder = reader.word()?;
            let count = reader.word()?;
            // Each prefix takes 8 bytes: a count beyond what is left is garbage.
            if count > (reader.bytes.len() / 8) as u64 {
                return Err(DecodeError("a folder names more prefixes than it holds"));
            }
            let prefixes = (0..count)
                .map(|_| reader.word())
                .collect::<Result<Vec<_>, _>>()?;
            folders.insert(folder, prefixes);
        }
        let record_count = reader.word()?;
        if reader.bytes.len() as u64 != record_count.saturating_mul(RECORD_BYTES as u64) {
            return Err(DecodeError("the record count does not match the length"));
        }
        let mut records = Vec::with_capacity(record_count as usize);
        for _ in 0..record_count {
            let low = reader.word()?;
            let high = reader.word()?;
            records.push(CheckedRecord {
                key: (u128::from(high) << 64) | u128::from(low),
                custodian: reader.word()?,
                rules: reader.word()?,
            });
        }
        if records.windows(2).any(|pair| pair[0].key >= pair[1].key) {
            return Err(DecodeError("records are not sorted"));
        }
        Ok(Memory { records, folders })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn word(&mut self) -> Result<u64, DecodeError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<8>()
            .ok_or(DecodeError("cut short"))?;
        self.bytes = rest;
        Ok(u64::from_le_bytes(*head))
    }
}

/// The records one scan judged, as they arrive ([`Judged::note`]).
#[derive(Debug)]
pub struct Judged {
    hasher: PathHasher,
    records: Vec<CheckedRecord>,
    folders: BTreeMap<u64, Vec<u64>>,
    /// The folder of the record noted last, and its hash: records of one
    /// folder arrive together, so most records hash only their path.
    last_folder: Option<(String, u64)>,
    /// The custodian of the record noted last, and its hash.
    last_owner: Option<(String, u64)>,
}

impl Judged {
    /// Nothing judged yet; paths and custodians hashed under `key`.
    pub fn new(key: [u8; 16]) -> Judged {
        Judged {
            hasher: PathHasher::new(key),
            records: Vec::new(),
            folders: BTreeMap::new(),
            last_folder: None,
            last_owner: None,
        }
    }

    /// `record` was judged, and the rules in `rules` (bits) checked it. A
    /// record no rule checks is not remembered: it counts for nothing.
    pub fn note(&mut self, record: &Record, rules: u64) {
        if rules == 0 {
            return;
        }
        let path = record.path.as_str();
        let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
        let folder_hash = match &self.last_folder {
            Some((last, hash)) if last == folder => *hash,
            _ => {
                let hash = self.hasher.hash(folder.as_bytes());
                if !self.folders.contains_key(&hash) {
                    self.folders
                        .insert(hash, prefix_hashes(&self.hasher, folder));
                }
                self.last_folder = Some((folder.to_owned(), hash));
                hash
            }
        };
        let custodian = match (record.custodian.as_deref(), &self.last_owner) {
            (None, _) => 0,
            (Some(custodian), Some((last, hash))) if last == custodian => *hash,
            (Some(custodian), _) => {
                let hash = custodian_hash(&self.hasher, custodian);
                self.last_owner = Some((custodian.to_owned(), hash));
                hash
            }
        };
        self.records.push(CheckedRecord {
            key: (u128::from(folder_hash) << 64) | u128::from(self.hasher.hash(path.as_bytes())),
            custodian,
            rules,
        });
    }
}

/// The hashes of the prefixes `folder` lies under: `""`, each ancestor, and
/// itself.
fn prefix_hashes(hasher: &PathHasher, folder: &str) -> Vec<u64> {
    let mut hashes = vec![hasher.hash(b"")];
    if !folder.is_empty() {
        for (index, _) in folder.match_indices('/') {
            hashes.push(hasher.hash(&folder.as_bytes()[..index]));
        }
        hashes.push(hasher.hash(folder.as_bytes()));
    }
    hashes
}

/// The keyed hash of a custodian (never 0, which stands for none).
fn custodian_hash(hasher: &PathHasher, custodian: &str) -> u64 {
    let mut bytes = Vec::with_capacity(custodian.len() + 6);
    bytes.extend_from_slice(b"owner\0");
    bytes.extend_from_slice(custodian.as_bytes());
    hasher.hash(&bytes).max(1)
}

/// The records one rule checked in one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCount {
    /// The rule's id.
    pub rule: String,
    /// Records checked.
    pub records: u64,
    /// Keyed hashes of their custodians, sorted and unique.
    pub custodians: Vec<u64>,
    /// Every record the source holds was counted (else: at least this many).
    pub complete: bool,
}

/// What a finished scan leaves: the memory for the next scan and the counts.
#[derive(Debug)]
pub struct Counted {
    /// For the next scan.
    pub memory: Memory,
    /// Per rule of the source, in rule order.
    pub counts: Vec<RuleCount>,
}

/// Whether a scan that judged `judged` and reported `report` changed nothing
/// a stored memory (`remembered`: one is stored under these rules) holds: it
/// judged nothing and carried everything. Then the stored memory and counts
/// stand, and a million remembered records are neither read, decoded nor
/// written.
pub fn unchanged(remembered: bool, judged: &Judged, report: &ScanReport) -> bool {
    let keeps_everything = |scope: &CarriedScope| {
        scope.prefix.is_empty()
            && scope.gone.is_empty()
            && scope.present.is_none()
            && scope.left_out.is_none()
    };
    remembered
        && judged.records.is_empty()
        && report.unread_prefixes.is_empty()
        && report.place_totals.is_empty()
        && report.carried.iter().any(keeps_everything)
}

/// The counts after a scan that judged `judged` and reported `report`, given
/// what earlier scans remembered (`previous`, encoded; `None` when there is no
/// memory made under these rules). A memory that does not decode is logged
/// and counted as none.
pub fn count(
    previous: Option<&[u8]>,
    judged: Judged,
    report: &ScanReport,
    rules: &SourceRules,
) -> Counted {
    let previous = previous.and_then(|bytes| match Memory::decode(bytes) {
        Ok(memory) => Some(memory),
        Err(error) => {
            tracing::warn!(error = %error, "Checked-records memory not read; the counts start over.");
            None
        }
    });
    count_with(previous.as_ref(), judged, report, rules)
}

/// [`count`] from a decoded memory.
fn count_with(
    previous: Option<&Memory>,
    judged: Judged,
    report: &ScanReport,
    rules: &SourceRules,
) -> Counted {
    let Judged {
        hasher,
        records: judged_records,
        folders: judged_folders,
        ..
    } = judged;
    let totalled: HashSet<u64> = report
        .place_totals
        .iter()
        .map(|total| hasher.hash(total.prefix.as_bytes()))
        .collect();
    let unread: HashSet<u64> = report
        .unread_prefixes
        .iter()
        .map(|prefix| hasher.hash(prefix.as_bytes()))
        .collect();
    let carried: Vec<Carried<'_>> = report
        .carried
        .iter()
        .filter(|scope| !totalled.contains(&hasher.hash(scope.prefix.as_bytes())))
        .map(|scope| Carried::new(&hasher, scope))
        .collect();
    let under = |folders: &BTreeMap<u64, Vec<u64>>, key: u128, places: &HashSet<u64>| {
        folders
            .get(&((key >> 64) as u64))
            .is_some_and(|prefixes| prefixes.iter().any(|prefix| places.contains(prefix)))
    };
    // Records judged where a total counts them are counted from the total.
    let mut records = judged_records;
    if !totalled.is_empty() {
        records.retain(|record| !under(&judged_folders, record.key, &totalled));
    }
    let mut complete = true;
    let mut folders = judged_folders;
    match previous {
        Some(previous) => {
            for record in &previous.records {
                let prefixes = previous
                    .folders
                    .get(&((record.key >> 64) as u64))
                    .map_or(&[][..], Vec::as_slice);
                if prefixes.iter().any(|prefix| totalled.contains(prefix)) {
                    continue;
                }
                let kept = prefixes.iter().any(|prefix| unread.contains(prefix))
                    || carried.iter().any(|scope| {
                        prefixes.contains(&scope.prefix) && scope.still_there(record.key)
                    });
                if kept {
                    records.push(*record);
                    folders
                        .entry((record.key >> 64) as u64)
                        .or_insert_with(|| prefixes.to_vec());
                }
            }
            // A numbered scope keeps the records it lists by number, which
            // the memory does not hold: they cannot be counted.
            if carried.iter().any(|scope| scope.numbered) {
                complete = false;
            }
        }
        // Carried or unread records that no memory holds are not counted.
        None => complete = carried.is_empty() && unread.is_empty(),
    }
    // This scan's records first: a stable sort keeps them ahead of older ones.
    records.sort_by_key(|record| record.key);
    records.dedup_by_key(|record| record.key);
    let used: BTreeSet<u64> = records
        .iter()
        .map(|record| (record.key >> 64) as u64)
        .collect();
    folders.retain(|folder, _| used.contains(folder));
    let totals: Vec<(u64, &PlaceTotal)> = report
        .place_totals
        .iter()
        .map(|total| (rules.checking_place(&total.place), total))
        .collect();
    let counts = rules
        .rule_ids()
        .enumerate()
        .map(|(index, rule)| {
            if index >= CHECKED_RULES {
                return RuleCount {
                    rule: rule.to_owned(),
                    records: 0,
                    custodians: Vec::new(),
                    complete: false,
                };
            }
            let bit = 1u64 << index;
            let mut custodians = BTreeSet::new();
            let mut checked = 0u64;
            for record in records.iter().filter(|record| record.rules & bit != 0) {
                checked += 1;
                if record.custodian != 0 {
                    custodians.insert(record.custodian);
                }
            }
            for (mask, total) in &totals {
                if mask & bit != 0 && total.records > 0 {
                    checked += total.records;
                    if let Some(custodian) = total.place.custodian.as_deref() {
                        custodians.insert(custodian_hash(&hasher, custodian));
                    }
                }
            }
            RuleCount {
                rule: rule.to_owned(),
                records: checked,
                custodians: custodians.into_iter().collect(),
                complete,
            }
        })
        .collect();
    Counted {
        memory: Memory { records, folders },
        counts,
    }
}

/// A carried scope, with its gone records as keys.
struct Carried<'a> {
    prefix: u64,
    gone: HashSet<u128>,
    left_out: Option<&'a LeftOut>,
    numbered: bool,
}

impl<'a> Carried<'a> {
    fn new(hasher: &PathHasher, scope: &'a CarriedScope) -> Carried<'a> {
        Carried {
            prefix: hasher.hash(scope.prefix.as_bytes()),
            gone: scope.gone.iter().map(|path| hasher.key(path)).collect(),
            left_out: scope.left_out.as_ref(),
            numbered: scope.present.is_some(),
        }
    }

    /// Whether the remembered record `key` is still there, unchanged: the
    /// scope does not list it as gone and, where the record cache says what
    /// it left out, it was left out. A numbered scope's records are not
    /// remembered by number: none is taken as there.
    fn still_there(&self, key: u128) -> bool {
        !self.numbered
            && !self.gone.contains(&key)
            && self
                .left_out
                .is_none_or(|LeftOut(cache)| cache.was_left_out(key))
    }
}

/// The hashing key for a source's memory, from its rules' key; `None` when
/// the rules hold no key (checking a config).
pub fn key(rules: &SourceRules) -> Option<[u8; 16]> {
    rules.path_key()
}

/// The plan a memory is kept under: the rules' fingerprint, this layout and
/// the key (a memory hashed under another key is useless).
pub fn plan(rules: &SourceRules, key: [u8; 16]) -> u64 {
    let hasher = PathHasher::new(key);
    tillsyn_core::fingerprint::Fingerprint::new("checked records plan")
        .number(rules.judging_fingerprint())
        .number(u64::from(FORMAT))
        .number(hasher.hash(b"checked-records plan"))
        .value()
}

/// Counts per rule over several sources: records summed, custodians united.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// Records checked.
    pub records: u64,
    /// Distinct custodians of those records.
    pub custodians: u64,
    /// Every source was counted in full.
    pub complete: bool,
}

/// Fold stored per-source counts into one per rule.
pub fn by_rule<'a>(
    rows: impl IntoIterator<Item = (&'a str, u64, &'a [u64], bool)>,
) -> BTreeMap<String, Checked> {
    let mut custodians: HashMap<&str, HashSet<u64>> = HashMap::new();
    let mut folded: BTreeMap<String, Checked> = BTreeMap::new();
    for (rule, records, rule_custodians, complete) in rows {
        let entry = folded.entry(rule.to_owned()).or_insert(Checked {
            complete: true,
            ..Checked::default()
        });
        entry.records += records;
        entry.complete &= complete;
        custodians
            .entry(rule)
            .or_default()
            .extend(rule_custodians.iter().copied());
    }
    for (rule, custodians) in custodians {
        if let Some(entry) = folded.get_mut(rule) {
            entry.custodians = custodians.len() as u64;
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes are stored, reading them back never panics; what
        /// was encoded reads back the same.
        #[test]
        fn memory_round_trips_and_garbage_is_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            keys in proptest::collection::btree_set(any::<u128>(), 0..20),
            folders in proptest::collection::btree_map(any::<u64>(), proptest::collection::vec(any::<u64>(), 0..4), 0..5),
        ) {
            let _ = Memory::decode(&bytes);
            let memory = Memory {
                records: keys.iter().map(|key| CheckedRecord { key: *key, custodian: (*key as u64) | 1, rules: 5 }).collect(),
                folders,
            };
            let decoded = Memory::decode(&memory.encode()).expect("decodes");
            prop_assert_eq!(decoded, memory);
        }
    }

    fn source_rules() -> SourceRules {
        let config = tillsyn_config::parse(
            "[daemon]\nstate_dir = \"state\"\n\n\
             [[sources]]\nname = \"crm\"\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\n\
             allow_plaintext = true\nitems = \"/items\"\nid = \"/id\"\n\n\
             [[rules]]\nid = \"closed\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"30d\"\n\
             timestamp = \"date:closed\"\nwhen = { attributes = { status = \"closed\" } }\n\n\
             [[rules]]\nid = \"any\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"3y\"\n\
             timestamp = \"modified\"\n",
            std::path::Path::new("/nonexistent/tillsyn.toml"),
        )
        .expect("config");
        crate::RuleSet::for_config(&config)
            .expect("rules")
            .for_source("crm")
    }

    fn item(id: &str, status: &str, custodian: &str) -> Record {
        let mut record = Record::new(
            tillsyn_connectors::RecordKind::CrmObject,
            std::sync::Arc::from("crm"),
            format!("cases/{id}"),
        );
        record.attributes.insert("status".into(), status.into());
        record.custodian = Some(custodian.into());
        record
    }

    fn judged(rules: &SourceRules, items: &[Record]) -> Judged {
        let mut judged = Judged::new([9; 16]);
        for item in items {
            judged.note(item, rules.checking(item));
        }
        judged
    }

    fn records(counted: &Counted) -> Vec<(String, u64, usize, bool)> {
        counted
            .counts
            .iter()
            .map(|count| {
                (
                    count.rule.clone(),
                    count.records,
                    count.custodians.len(),
                    count.complete,
                )
            })
            .collect()
    }

    fn expect(
        closed: u64,
        closed_custodians: usize,
        any: u64,
        complete: bool,
    ) -> Vec<(String, u64, usize, bool)> {
        vec![
            ("closed".to_owned(), closed, closed_custodians, complete),
            ("any".to_owned(), any, 2, complete),
        ]
    }

    /// An incremental read that lists what it read again carries the rest;
    /// a record read again with other attributes counts as it is now; after
    /// a partial scan what lies under the unread place is kept; a numbered
    /// scope cannot be counted from memory; without memory a carried scan is
    /// a lower bound.
    #[test]
    fn carried_records_count_as_remembered_and_read_ones_as_read() {
        let rules = source_rules();
        let full = [
            item("1", "closed", "anna"),
            item("2", "closed", "bo"),
            item("3", "open", "bo"),
        ];
        let first = count_with(None, judged(&rules, &full), &ScanReport::default(), &rules);
        assert_eq!(records(&first), expect(2, 2, 3, true));

        // Item 2 was reopened; items 1 and 3 were not read again.
        let report = ScanReport {
            carried: vec![CarriedScope {
                prefix: String::new(),
                gone: vec!["cases/2".into()],
                present: None,
                left_out: None,
            }],
            ..ScanReport::default()
        };
        let reopened = [item("2", "open", "bo")];
        let second = count_with(
            Some(&first.memory),
            judged(&rules, &reopened),
            &report,
            &rules,
        );
        assert_eq!(records(&second), expect(1, 1, 3, true));

        // Item 3 went: listed as gone and not read.
        let report = ScanReport {
            carried: vec![CarriedScope {
                prefix: String::new(),
                gone: vec!["cases/3".into()],
                present: None,
                left_out: None,
            }],
            ..ScanReport::default()
        };
        let third = count_with(Some(&second.memory), judged(&rules, &[]), &report, &rules);
        assert_eq!(
            records(&third),
            vec![
                ("closed".to_owned(), 1, 1, true),
                ("any".to_owned(), 2, 2, true)
            ]
        );

        // A partial full read that could not read `cases`: its records stay.
        let report = ScanReport {
            unread_prefixes: vec!["cases".into()],
            ..ScanReport::default()
        };
        let partial = count_with(Some(&third.memory), judged(&rules, &[]), &report, &rules);
        assert_eq!(records(&partial), records(&third));
        // The same without memory: nothing to carry, a lower bound.
        let blind = count_with(None, judged(&rules, &[]), &report, &rules);
        assert!(
            blind
                .counts
                .iter()
                .all(|count| !count.complete && count.records == 0)
        );

        // A full read again: only what it read.
        let again = count_with(
            Some(&third.memory),
            judged(&rules, &full[..1]),
            &ScanReport::default(),
            &rules,
        );
        assert_eq!(
            records(&again),
            vec![
                ("closed".to_owned(), 1, 1, true),
                ("any".to_owned(), 1, 1, true)
            ]
        );

        // Numbered records are carried by number, which memory lacks.
        let report = ScanReport {
            carried: vec![CarriedScope {
                prefix: "cases".into(),
                gone: Vec::new(),
                present: Some(std::sync::Arc::new(vec![1])),
                left_out: None,
            }],
            ..ScanReport::default()
        };
        let numbered = count_with(Some(&first.memory), judged(&rules, &[]), &report, &rules);
        assert!(numbered.counts.iter().all(|count| !count.complete));
    }

    /// A scan that judged nothing and carried everything leaves the stored
    /// memory as it is; one that lost a record does not.
    #[test]
    fn nothing_changed_is_nothing_to_write() {
        let rules = source_rules();
        let first = count_with(
            None,
            judged(&rules, &[item("1", "closed", "anna")]),
            &ScanReport::default(),
            &rules,
        );
        let stored = first.memory.encode();
        let everything = |gone: Vec<String>| ScanReport {
            carried: vec![CarriedScope {
                prefix: String::new(),
                gone,
                present: None,
                left_out: None,
            }],
            ..ScanReport::default()
        };
        assert!(unchanged(
            true,
            &judged(&rules, &[]),
            &everything(Vec::new())
        ));
        // Nothing stored, or a record gone: there is something to write.
        assert!(!unchanged(
            false,
            &judged(&rules, &[]),
            &everything(Vec::new())
        ));
        assert!(!unchanged(
            true,
            &judged(&rules, &[]),
            &everything(vec!["cases/1".into()])
        ));
        let lost = count(
            Some(&stored),
            judged(&rules, &[]),
            &everything(vec!["cases/1".into()]),
            &rules,
        );
        assert!(
            lost.counts
                .iter()
                .all(|count| count.records == 0 && count.complete)
        );
        // Without a memory there is nothing to keep: counted, as a lower bound.
        let blind = count(None, judged(&rules, &[]), &everything(Vec::new()), &rules);
        assert!(blind.counts.iter().all(|count| !count.complete));
        // A memory that cannot be read starts over, once something changed:
        // the carried records are not counted.
        let garbage = count(
            Some(&[1, 2, 3]),
            judged(&rules, &[]),
            &everything(vec!["cases/2".into()]),
            &rules,
        );
        assert!(garbage.counts.iter().all(|count| !count.complete));
    }

    #[test]
    fn prefixes_cover_every_ancestor() {
        let hasher = PathHasher::new([3; 16]);
        let hashes = prefix_hashes(&hasher, "a/b/c");
        let expected: Vec<u64> = ["", "a", "a/b", "a/b/c"]
            .iter()
            .map(|prefix| hasher.hash(prefix.as_bytes()))
            .collect();
        assert_eq!(hashes, expected);
        assert_eq!(prefix_hashes(&hasher, ""), vec![hasher.hash(b"")]);
    }

    #[test]
    fn counts_fold_across_sources_with_custodians_united() {
        let rows = vec![
            ("inbox", 10, &[1u64, 2][..], true),
            ("inbox", 5, &[2u64, 3][..], true),
            ("cv", 4, &[][..], false),
        ];
        let folded = by_rule(rows);
        assert_eq!(
            folded["inbox"],
            Checked {
                records: 15,
                custodians: 3,
                complete: true
            }
        );
        assert_eq!(
            folded["cv"],
            Checked {
                records: 4,
                custodians: 0,
                complete: false
            }
        );
    }
}
