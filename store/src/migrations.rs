//! Schema migrations, applied in order; `PRAGMA user_version` holds how many ran.
//! Append new steps; never edit a released one.

/// Each step's SQL.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: scans, findings, checkpoints.
    r#"
    CREATE TABLE scans (
        id            INTEGER PRIMARY KEY,
        source        TEXT    NOT NULL,
        started_at    INTEGER NOT NULL,
        finished_at   INTEGER,
        status        TEXT    NOT NULL CHECK (status IN ('running', 'complete', 'partial', 'failed')),
        records       INTEGER NOT NULL DEFAULT 0,
        error_kind    TEXT,
        error_message TEXT
    );
    CREATE INDEX scans_by_source ON scans (source, started_at);

    CREATE TABLE scan_problems (
        scan_id INTEGER NOT NULL REFERENCES scans (id),
        kind    TEXT    NOT NULL,
        count   INTEGER NOT NULL,
        PRIMARY KEY (scan_id, kind)
    );

    CREATE TABLE findings (
        id              INTEGER PRIMARY KEY,
        rule            TEXT    NOT NULL,
        source          TEXT    NOT NULL,
        record_id       TEXT    NOT NULL,
        record_path     TEXT    NOT NULL,
        record_kind     TEXT    NOT NULL,
        owner           TEXT,
        severity        TEXT    NOT NULL,
        detail          TEXT    NOT NULL,
        age_days        INTEGER,
        first_seen      INTEGER NOT NULL,
        first_seen_scan INTEGER NOT NULL,
        last_seen       INTEGER NOT NULL,
        last_seen_scan  INTEGER NOT NULL,
        resolved_at     INTEGER,
        resolved_scan   INTEGER
    );
    CREATE UNIQUE INDEX open_findings ON findings (rule, source, record_id) WHERE resolved_at IS NULL;
    CREATE INDEX findings_by_source ON findings (source, resolved_at);

    CREATE TABLE checkpoints (
        source     TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        value      TEXT    NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (source, key)
    );
    "#,
    // 2: counting a scan's new findings without reading the whole history.
    r#"
    CREATE INDEX findings_by_first_scan ON findings (first_seen_scan);
    "#,
    // 3: the people each source's records belong to, for `conflict` rules joined
    // across sources. A finished scan replaces its source's rows.
    r#"
    CREATE TABLE conflict_keys (
        rule        TEXT    NOT NULL,
        side        TEXT    NOT NULL CHECK (side IN ('marked', 'forbidden')),
        source      TEXT    NOT NULL,
        key         TEXT    NOT NULL,
        record_id   TEXT    NOT NULL,
        record_path TEXT    NOT NULL,
        record_kind TEXT    NOT NULL,
        owner       TEXT,
        scan_id     INTEGER NOT NULL
    );
    CREATE INDEX conflict_keys_by_rule ON conflict_keys (rule, side, key);
    CREATE INDEX conflict_keys_by_source ON conflict_keys (source, scan_id);
    "#,
    // 4: the daemon counts each scan's resolved findings per rule, and groups the
    // open ones per rule and source, after every scan.
    r#"
    CREATE INDEX findings_by_resolved_scan ON findings (resolved_scan) WHERE resolved_scan IS NOT NULL;
    CREATE INDEX open_findings_by_rule ON findings (rule, source, first_seen) WHERE resolved_at IS NULL;
    "#,
    // 5: the monthly report's outbox. A month's report is stored, rendered, before
    // it is sent, and sent once: `sent_at` is set when the server accepted it.
    r#"
    CREATE TABLE report_outbox (
        month           TEXT    PRIMARY KEY,
        created_at      INTEGER NOT NULL,
        subject         TEXT    NOT NULL,
        message         BLOB    NOT NULL,
        sent_at         INTEGER,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        next_attempt_at INTEGER NOT NULL
    );
    "#,
    // 6: leases, so two processes never scan one source at once; an outbox claim,
    // so two processes never send one month's report twice.
    r#"
    CREATE TABLE scan_leases (
        source     TEXT    PRIMARY KEY,
        holder     TEXT    NOT NULL,
        expires_at INTEGER NOT NULL
    );
    ALTER TABLE report_outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE report_outbox ADD COLUMN claimed_until INTEGER;
    CREATE INDEX scans_by_finish ON scans (finished_at);
    CREATE INDEX findings_by_resolved_at ON findings (resolved_at) WHERE resolved_at IS NOT NULL;
    "#,
    // 7: the identity index: the keyed hash of each identifier found in a record
    // (never the identifier, nor the record's owner), its kind, the field that
    // held it, and where. Rows
    // follow the records: a record read again has its rows renewed, one gone
    // has them removed.
    r#"
    CREATE TABLE identities (
        hash        BLOB    NOT NULL,
        source      TEXT    NOT NULL,
        record_id   TEXT    NOT NULL,
        field       TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        record_path TEXT    NOT NULL,
        record_kind TEXT    NOT NULL,
        container   TEXT    NOT NULL,
        record_time INTEGER,
        scan_id     INTEGER NOT NULL,
        PRIMARY KEY (hash, source, record_id, field)
    ) WITHOUT ROWID;
    CREATE INDEX identities_by_scan ON identities (source, scan_id);
    "#,
    // 8: the audit log of `tillsyn subject`: a lookup is itself processing of
    // personal data. The kinds asked for, their keyed hashes (never the
    // identifiers), and how many places were found.
    r#"
    CREATE TABLE subject_lookups (
        id       INTEGER PRIMARY KEY,
        at       INTEGER NOT NULL,
        kinds    TEXT    NOT NULL,
        hashes   TEXT    NOT NULL,
        hits     INTEGER NOT NULL
    );
    "#,
    // 9: the erasure register as tillsyn keeps it: the keyed hash of each
    // identifier whose erasure was requested (never the identifier), its kind,
    // and when it was requested (the earliest, when listed twice).
    r#"
    CREATE TABLE erasure_requests (
        hash         BLOB    PRIMARY KEY,
        kind         TEXT    NOT NULL,
        requested_at INTEGER NOT NULL,
        imported_at  INTEGER NOT NULL
    );
    "#,
    // 10: the identity index in sorted runs of compact segments (see
    // `identity_index`) instead of one row per occurrence: a segment holds the
    // entries of one hash range of one run (`key`: the range's granularity and
    // number), and `identity_places` the folders and directories whose records
    // it holds. The rows of migration 7 are not converted: where there were
    // any, every source's checkpoints are cleared, so the next scan reads
    // everything once and builds the index anew.
    r#"
    CREATE TABLE identity_segments (
        id      INTEGER PRIMARY KEY,
        key     INTEGER NOT NULL,
        source  TEXT    NOT NULL,
        scan_id INTEGER NOT NULL,
        run     INTEGER NOT NULL,
        entries INTEGER NOT NULL,
        data    BLOB    NOT NULL
    );
    CREATE INDEX identity_segments_by_key ON identity_segments (key);
    CREATE INDEX identity_segments_by_source ON identity_segments (source, scan_id);
    CREATE INDEX identity_segments_by_run ON identity_segments (run, key);
    CREATE TABLE identity_places (
        source TEXT NOT NULL,
        place  TEXT NOT NULL,
        PRIMARY KEY (source, place)
    ) WITHOUT ROWID;
    DELETE FROM checkpoints WHERE EXISTS (SELECT 1 FROM identities);
    DROP TABLE identities;
    "#,
    // 11: what the last finished scan of each source judged, per record (see
    // `tillsyn_connectors::record_cache`): 32 bytes an entry, keyed by a keyed
    // hash of the record's path, never the path; `plan` is the fingerprint of
    // the rules and settings it was made under; `complete` when it holds every
    // record the store keeps anything about (its scan read the whole source).
    r#"
    CREATE TABLE record_cache (
        source   TEXT    PRIMARY KEY,
        plan     INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        entries  INTEGER NOT NULL,
        data     BLOB    NOT NULL
    );
    "#,
    // 12: exceptions ("dispens", see `crate::exceptions`): the exception that
    // covers an open finding, and when it ends; the finding counts as broken
    // again from then.
    r#"
    ALTER TABLE findings ADD COLUMN exception TEXT;
    ALTER TABLE findings ADD COLUMN excepted_until INTEGER;
    CREATE INDEX findings_excepted ON findings (source) WHERE exception IS NOT NULL;
    "#,
    // 13: personal digests (see `crate::report::digest`): one row per month and
    // owner (by pseudonym), the message as it is sent, kept until the server
    // took it and then dropped; and per month how many owners had findings
    // and how many had no address.
    r#"
    CREATE TABLE digest_outbox (
        month           TEXT    NOT NULL,
        recipient       TEXT    NOT NULL,
        address         TEXT    NOT NULL,
        created_at      INTEGER NOT NULL,
        message         BLOB,
        sent_at         INTEGER,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        next_attempt_at INTEGER NOT NULL,
        PRIMARY KEY (month, recipient)
    );
    CREATE TABLE digest_months (
        month      TEXT    PRIMARY KEY,
        owners     INTEGER NOT NULL,
        no_address INTEGER NOT NULL
    );
    "#,
    // 14: what a finding measured, as data (`tillsyn_core::detail`, JSON),
    // beside its English text: the report renders it in its own language.
    r#"
    ALTER TABLE findings ADD COLUMN detail_data TEXT;
    "#,
    // 15: records checked per rule (see `crate::checked`): per source the
    // memory of what its scans judged, by keyed hashes, and per rule and
    // source the count, with its owners' keyed hashes (8 bytes each).
    r#"
    CREATE TABLE checked_memory (
        source TEXT    PRIMARY KEY,
        plan   INTEGER NOT NULL,
        data   BLOB    NOT NULL
    );
    CREATE TABLE checked_counts (
        source   TEXT    NOT NULL,
        rule     TEXT    NOT NULL,
        records  INTEGER NOT NULL,
        owners   BLOB    NOT NULL,
        complete INTEGER NOT NULL,
        PRIMARY KEY (source, rule)
    );
    "#,
    // 16: which process runs a scan, so that a scan left `running` by a
    // process that died (in a fleet, where the store is shared and no
    // process may fail every running scan at start) is failed once its
    // process holds no lease any more.
    r#"
    ALTER TABLE scans ADD COLUMN holder TEXT;
    "#,
    // 17: what a scan of one unit (an IMAP account) decides lies under its
    // record-path prefixes: these indexes find it by a bytewise range,
    // without reading the rest of the source.
    r#"
    CREATE INDEX open_findings_by_path ON findings (source, record_path COLLATE BINARY)
        WHERE resolved_at IS NULL;
    CREATE INDEX conflict_keys_by_path ON conflict_keys (source, record_path COLLATE BINARY);
    CREATE INDEX checkpoints_by_key ON checkpoints (source, key COLLATE BINARY);
    CREATE INDEX identity_places_by_place ON identity_places (source, place COLLATE BINARY);
    "#,
    // 18: facts about the store itself: the check value of the pseudonym
    // key its processes share (a keyed hash of a fixed text).
    r#"
    CREATE TABLE store_facts (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 19: two roles named apart: the person or team who must act on a record
    // is its custodian (a mailbox's account, a file's owner, a configured
    // handler field); whom it is about are its subjects, in the identity
    // index. The columns that held "owner" in the first sense say so.
    r#"
    ALTER TABLE findings RENAME COLUMN owner TO custodian;
    ALTER TABLE conflict_keys RENAME COLUMN owner TO custodian;
    ALTER TABLE checked_counts RENAME COLUMN owners TO custodians;
    ALTER TABLE digest_months RENAME COLUMN owners TO custodians;
    UPDATE findings SET exception = 'custodian-mark' WHERE exception = 'owner-mark';
    "#,
    // 20: one outbox for everything tillsyn mails (see `crate::store::outbox`):
    // the monthly report (recipient '') and each custodian's digest (by
    // pseudonym), each claimed before it is sent so that of several processes
    // exactly one sends it, given up after a set number of attempts, and
    // pruned by retention once sent or given up. The two outboxes before it
    // are moved in whole. The digests of a month are counted by why they
    // could not go as well: no address, an address outside the
    // organisation's domains, no custodian.
    r#"
    CREATE TABLE outbox (
        kind            TEXT    NOT NULL CHECK (kind IN ('report', 'digest')),
        period          TEXT    NOT NULL,
        recipient       TEXT    NOT NULL,
        address         TEXT,
        subject         TEXT    NOT NULL,
        created_at      INTEGER NOT NULL,
        message         BLOB,
        sent_at         INTEGER,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        next_attempt_at INTEGER NOT NULL,
        claimed_by      TEXT,
        claimed_until   INTEGER,
        gave_up_at      INTEGER,
        PRIMARY KEY (kind, period, recipient)
    );
    CREATE INDEX outbox_waiting ON outbox (kind, next_attempt_at)
        WHERE sent_at IS NULL AND gave_up_at IS NULL;
    INSERT INTO outbox (kind, period, recipient, address, subject, created_at, message,
                        sent_at, attempts, last_error, next_attempt_at, claimed_by, claimed_until)
        SELECT 'report', month, '', NULL, subject, created_at, message, sent_at, attempts,
               last_error, next_attempt_at, claimed_by, claimed_until
        FROM report_outbox;
    INSERT INTO outbox (kind, period, recipient, address, subject, created_at, message,
                        sent_at, attempts, last_error, next_attempt_at)
        SELECT 'digest', month, recipient, address, '', created_at, message, sent_at, attempts,
               last_error, next_attempt_at
        FROM digest_outbox;
    DROP TABLE report_outbox;
    DROP TABLE digest_outbox;
    ALTER TABLE digest_months ADD COLUMN outside_domains INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE digest_months ADD COLUMN no_custodian INTEGER NOT NULL DEFAULT 0;
    "#,
    // 21: nothing plain at rest. Conflict keys are kept as keyed hashes from
    // now on; the plain ones of earlier scans cannot be hashed here (the key
    // is not in the database), so they go, and each `conflict` rule is
    // judged again once both its sides have been scanned. The share's
    // content cache was keyed by the file's path: those checkpoints go too,
    // and the next scan reads changed and unchanged files once.
    r#"
    DELETE FROM conflict_keys;
    DELETE FROM checkpoints WHERE key LIKE 'content:%';
    "#,
    // 22: the audit log of `tillsyn subject` is written first: a row before
    // any server is asked, completed afterwards, so that a lookup that
    // failed or was killed still shows. Earlier rows completed when written.
    r#"
    ALTER TABLE subject_lookups ADD COLUMN asked_servers INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE subject_lookups ADD COLUMN completed_at INTEGER;
    UPDATE subject_lookups SET completed_at = at;
    "#,
    // 23: a unit's scan (one account of a fleet's IMAP source) is recorded
    // as that unit's: a source is complete only when every one of its units
    // last finished complete, never because one of them did (see
    // `Store::source_state`).
    r#"
    ALTER TABLE scans ADD COLUMN unit TEXT;
    CREATE INDEX scans_by_unit ON scans (source, unit, id);
    "#,
    // 24: open findings are unique by source, rule and record, in that
    // order (the same rows unique as before), so that one source's open
    // findings are read a page at a time along the index
    // (`Store::open_findings_page`) instead of sorted again for every page:
    // listing 100,000 sorted all of them fifty times.
    r#"
    DROP INDEX open_findings;
    CREATE UNIQUE INDEX open_findings ON findings (source, rule, record_id) WHERE resolved_at IS NULL;
    "#,
];
