//! The index's own tests: encodings, segments, runs and lookups.

use super::codec::*;
use super::segment::*;
use super::staging::*;
use super::*;
use proptest::prelude::*;
use tillsyn_rules::identity::NewIdentity;

fn identity<'a>(
    hash: IdentityHash,
    id: &'a str,
    path: &'a str,
    time: Option<i64>,
) -> NewIdentity<'a> {
    NewIdentity {
        hash,
        kind: "email",
        field: "from",
        record_id: id,
        record_path: path,
        record_kind: "message",
        container: "INBOX",
        record_time: time,
    }
}

fn run_of(rows: &[NewIdentity<'_>]) -> Vec<(i64, i64, Vec<OwnedEntry>)> {
    let mut batch = IdentityBatch::default();
    for row in rows {
        batch.push(row);
    }
    let mut staged = Staged::default();
    staged.take(&mut batch);
    assert!(batch.is_empty());
    let mut segments = Vec::new();
    staged
        .write_run(&mut Places::default(), |key, count, data| {
            segments.push((key, count, owned_entries(data)?));
            Ok(())
        })
        .expect("run");
    segments
}

#[test]
fn a_run_is_sorted_deduplicated_and_split_by_hash_range() {
    let low = [0x00; 16];
    let mut next = [0x00; 16];
    next[15] = 9;
    let rows = [
        identity([0xff; 16], "INBOX/3", "INBOX/3", None),
        identity(low, "x", "anna/INBOX/1", Some(1_700_000_000)),
        // The same hash, kind, field and record again: one entry.
        identity(low, "x", "anna/INBOX/1", Some(1_700_000_001)),
        identity(next, "é/ü", "é/ü", Some(-5)),
    ];
    let segments = run_of(&rows);
    // Three entries fit one segment (granularity 0: key 0).
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].0, 0);
    assert_eq!(segments[0].1, 3);
    let entries = &segments[0].2;
    assert_eq!(entries[0].record_path, "anna/INBOX/1");
    assert_eq!(entries[0].record_id, "x");
    assert_eq!(entries[0].record_time, Some(1_700_000_000));
    assert_eq!(entries[1].record_path, "é/ü");
    assert_eq!(entries[1].record_time, Some(-5));
    assert_eq!(entries[2].record_time, None);
    assert_eq!(entries[2].hash, [0xff; 16]);
    // Many entries: ranges at a finer granularity, each key's hashes
    // inside it, sorted.
    let hashes: Vec<IdentityHash> = (0..1000u32)
        .map(|n| {
            let mut hash = [0u8; 16];
            hash[..4].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
            hash
        })
        .collect();
    let paths: Vec<String> = (0..1000).map(|n| format!("INBOX/{n}")).collect();
    let many: Vec<NewIdentity<'_>> = hashes
        .iter()
        .zip(&paths)
        .map(|(hash, path)| identity(*hash, path, path, None))
        .collect();
    let segments = run_of(&many);
    let bits = bits_for(1000);
    assert_eq!(bits, 2);
    assert_eq!(segments.len(), 4);
    let mut total = 0;
    for (segment_key, count, entries) in &segments {
        total += count;
        assert!(entries.windows(2).all(|pair| pair[0].hash < pair[1].hash));
        assert!(
            entries
                .iter()
                .all(|entry| key(&entry.hash, bits) == *segment_key)
        );
    }
    assert_eq!(total, 1000);
}

proptest! {
    #[test]
    fn any_bytes_decode_to_entries_or_an_error_never_a_panic(
        data in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut reader = SegmentReader::new(&data);
        let mut decoded = 0;
        while let Ok(Some(_)) = reader.next_entry() {
            decoded += 1;
        }
        prop_assert!(decoded <= data.len());
        let _ = decode_staged(&data);
        prop_assert!(staged_identity(&data).len() <= data.len());
    }

    #[test]
    fn any_entries_round_trip_through_a_segment(
        rows in proptest::collection::vec(
            (any::<[u8; 16]>(), "[a-zé/]{0,30}", "[a-zé/]{0,30}", "[a-z]{0,200}",
             proptest::option::of(any::<i64>())),
            1..40,
        ),
    ) {
        let rows: Vec<NewIdentity<'_>> = rows
            .iter()
            .map(|(hash, id, path, field, time)| NewIdentity {
                field,
                ..identity(*hash, id, path, *time)
            })
            .collect();
        let mut expected: Vec<&NewIdentity<'_>> = rows.iter().collect();
        expected.sort_by(|a, b| {
            (a.hash, a.field.len(), a.field, a.record_id.len(), a.record_id)
                .cmp(&(b.hash, b.field.len(), b.field, b.record_id.len(), b.record_id))
        });
        expected.dedup_by(|a, b| (a.hash, a.field, a.record_id) == (b.hash, b.field, b.record_id));
        let decoded: Vec<OwnedEntry> = run_of(&rows)
            .into_iter()
            .flat_map(|(_, _, entries)| entries)
            .collect();
        prop_assert_eq!(decoded.len(), expected.len());
        for (entry, row) in decoded.iter().zip(expected) {
            prop_assert_eq!(entry.hash, row.hash);
            prop_assert_eq!(&entry.record_id, row.record_id);
            prop_assert_eq!(&entry.record_path, row.record_path);
            prop_assert_eq!(&entry.field, row.field);
            prop_assert_eq!(&entry.kind, row.kind);
            prop_assert_eq!(&entry.container, row.container);
            prop_assert_eq!(entry.record_time, row.record_time);
        }
    }
}
