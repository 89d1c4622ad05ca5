//! Connector checkpoints: what a backend remembers between scans to read
//! only what changed (an IMAP folder's last UID, a directory's newest change
//! stamp, an API's newest change time, a file's content summary).
//!
//! Each backend's checkpoint is a typed value ([`Checkpoint`]) with a
//! version, stored as text under a key in the source's checkpoints:
//! `v{VERSION} {plan} {json}`. `plan` is the backend's read plan as the one
//! stable [`Fingerprint`](tillsyn_core::fingerprint::Fingerprint) (what the
//! rules and the source's settings ask it to read). A checkpoint of another
//! version, made under another plan, or that does not decode is not used:
//! the backend reads in full once and stores a new one, which is what an
//! upgrade that changes a format costs (the release note says so).

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A backend's checkpoint.
pub trait Checkpoint: Serialize + DeserializeOwned {
    /// The stored form's version: raise it whenever the type changes.
    const VERSION: u32;
}

/// The checkpoint under `key`, when there is one of this version made under
/// `plan`.
pub fn load<T: Checkpoint>(
    checkpoints: &BTreeMap<String, String>,
    key: &str,
    plan: &str,
) -> Option<T> {
    decode(checkpoints.get(key)?, plan)
}

/// `state` under `key`, made under `plan`.
pub fn store<T: Checkpoint>(
    checkpoints: &mut BTreeMap<String, String>,
    key: impl Into<String>,
    plan: &str,
    state: &T,
) {
    if let Some(text) = encode(plan, state) {
        checkpoints.insert(key.into(), text);
    }
}

/// The stored text of `state` under `plan`; `None` when it does not
/// serialise (it always does for the backends' plain data).
pub fn encode<T: Checkpoint>(plan: &str, state: &T) -> Option<String> {
    let json = serde_json::to_string(state).ok()?;
    Some(format!("v{} {plan} {json}", T::VERSION))
}

/// `text` as a checkpoint of this version made under `plan`.
pub fn decode<T: Checkpoint>(text: &str, plan: &str) -> Option<T> {
    let rest = text.strip_prefix('v')?;
    let (version, rest) = rest.split_once(' ')?;
    let (stored_plan, json) = rest.split_once(' ')?;
    if version.parse::<u32>().ok()? != T::VERSION || stored_plan != plan {
        return None;
    }
    serde_json::from_str(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Position {
        last: u32,
        stamp: Option<String>,
    }

    impl Checkpoint for Position {
        const VERSION: u32 = 3;
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Older {
        last: u32,
        stamp: Option<String>,
    }

    impl Checkpoint for Older {
        const VERSION: u32 = 2;
    }

    #[test]
    fn a_checkpoint_is_used_only_under_its_version_and_plan() {
        let mut checkpoints = BTreeMap::new();
        let state = Position {
            last: 41,
            stamp: Some("20261207101500Z".into()),
        };
        store(&mut checkpoints, "ldap", "00ff", &state);
        assert_eq!(load::<Position>(&checkpoints, "ldap", "00ff"), Some(state));
        // Another plan, another version, another key: not used.
        assert_eq!(load::<Position>(&checkpoints, "ldap", "00fe"), None);
        assert_eq!(load::<Older>(&checkpoints, "ldap", "00ff"), None);
        assert_eq!(load::<Position>(&checkpoints, "http", "00ff"), None);
        // A format from before checkpoints were typed, or damage: not used.
        for text in [
            "1701000000",
            "v3 00ff",
            "v3 00ff {",
            "v3 00ff {\"last\":-1}",
            "x3 00ff {}",
        ] {
            checkpoints.insert("ldap".into(), text.into());
            assert_eq!(
                load::<Position>(&checkpoints, "ldap", "00ff"),
                None,
                "{text}"
            );
        }
    }
}
