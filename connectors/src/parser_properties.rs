//! Property tests: no parser of outside data panics, whatever a server, a file
//! or a mail sends. Each property feeds arbitrary text or bytes, plus text shaped
//! like the real thing (digits, offsets, separators, non-ASCII where ASCII is
//! expected) so the generator reaches the parsers' deeper branches. The runs
//! and their counts are recorded in FUZZING.md; `PROPTEST_CASES=N` raises the
//! count.

use proptest::prelude::*;

/// Text shaped like a directory or API time: digits, then a tail of offset
/// signs, fractions, letters and non-ASCII characters.
fn time_like() -> impl Strategy<Value = String> {
    (
        "[0-9]{0,16}",
        prop::collection::vec(
            prop_oneof![
                Just("Z".to_owned()),
                Just("+".to_owned()),
                Just("-".to_owned()),
                Just(".".to_owned()),
                Just(",".to_owned()),
                Just("é".to_owned()),
                Just("ä0".to_owned()),
                Just("\u{1F600}".to_owned()),
                "[0-9]{1,4}",
                "\\PC",
            ],
            0..5,
        ),
    )
        .prop_map(|(digits, tail)| format!("{digits}{}", tail.concat()))
}

proptest! {
    #[test]
    fn directory_times_never_panic(text in prop_oneof![time_like(), "\\PC*"]) {
        let _ = crate::ldap::parse_directory_time(&text, chrono_tz::UTC);
    }

    #[test]
    fn api_times_never_panic(text in prop_oneof![time_like(), "\\PC*"], number in any::<i64>()) {
        let _ = crate::http::parse_json_time(&serde_json::Value::String(text), chrono_tz::UTC);
        let _ = crate::http::parse_json_time(&serde_json::json!(number), chrono_tz::UTC);
    }

    #[test]
    fn dates_in_paths_and_markers_never_panic(
        text in prop_oneof![
            "([0-9]{1,4}[-/_ .]?){0,6}\\PC{0,8}",
            "\\PC*",
        ]
    ) {
        let _ = crate::local_fs::date_from_path(&text, chrono_tz::UTC);
        let _ = crate::local_fs::first_iso_date(&text, chrono_tz::UTC);
        let _ = crate::local_fs::marker_date(&text, chrono_tz::UTC);
    }

    #[test]
    fn mail_headers_never_panic(
        header in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            "((From|To|Cc|Date|Subject): [^\\r\\n]{0,40}\\r?\\n[ \\t]?){0,6}"
                .prop_map(String::into_bytes),
        ]
    ) {
        let parser = mail_parser::MessageParser::new();
        let _ = crate::mail_headers::participants(&parser, &header);
    }

    #[test]
    fn folder_names_never_panic(name in prop_oneof!["&[A-Za-z0-9+,]{0,12}-?\\PC{0,4}", "\\PC*"]) {
        let _ = crate::mutf7::decode(&name);
    }

    #[test]
    fn next_links_and_json_values_never_panic(
        link in "\\PC{0,80}",
        json in "\\PC{0,64}",
    ) {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&link) {
            headers.insert(reqwest::header::LINK, value);
        }
        let _ = crate::http::next_link(&headers);
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&json) {
            let _ = crate::http::text_of(&value);
            let _ = value.pointer(&link);
        }
    }

    #[test]
    fn body_structures_never_panic_and_their_headers_stay_headers(
        structure in prop_oneof![
            // Shaped like a server's BODYSTRUCTURE: nested parts, parameters
            // with quotes, escapes, control characters and non-ASCII.
            prop::collection::vec(
                prop_oneof![
                    Just("(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"base64\" 120 3 NIL NIL NIL NIL)".to_owned()),
                    Just("(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"base64\" 999999999 NIL (\"attachment\" (\"filename\" \"a.pdf\")) NIL NIL)".to_owned()),
                    Just("(\"image\" \"png\" NIL NIL NIL \"base64\" 10 NIL NIL NIL NIL)".to_owned()),
                    "\\(\"(text|application|message)\" \"[a-z\\-]{0,8}\" \\(\"name\" \"[^\"\\\\]{0,6}(\\\\\"|\\\\\\\\)?[^\"\\\\]{0,6}\"\\) NIL NIL \"(7bit|base64|quoted-printable|x-\\PC{0,3})\" [0-9]{1,10} NIL NIL NIL NIL\\)",
                ],
                1..6,
            )
            .prop_map(|parts| format!("({} \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)", parts.concat())),
            "\\PC{0,200}",
        ],
        limit in 0u64..2_000_000,
    ) {
        let line = format!("* 1 FETCH (BODYSTRUCTURE {structure})\r\n");
        if let Ok((_, async_imap::imap_proto::Response::Fetch(_, attributes))) =
            async_imap::imap_proto::Response::parse(line.as_bytes())
        {
            for attribute in &attributes {
                if let async_imap::imap_proto::AttributeValue::BodyStructure(root) = attribute {
                    let selection = crate::imap::structure::select(root, limit);
                    for part in &selection.parts {
                        // Header lines end in CRLF, and nothing else breaks a line.
                        let text = String::from_utf8_lossy(&part.header);
                        prop_assert!(text.ends_with("\r\n\r\n"), "{text:?}");
                        let body = &text[..text.len() - 4];
                        for line in body.split("\r\n") {
                            prop_assert!(!line.contains('\r') && !line.contains('\n'), "{text:?}");
                        }
                    }
                }
            }
        }
    }
}
