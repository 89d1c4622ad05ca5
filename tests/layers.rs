//! The house rules of the workspace, checked on every test run (and so in
//! CI): no module cycle inside any crate, and each crate depends only on
//! crates of a lower layer (ARCHITECTURE.md). Cargo already refuses a cycle
//! between crates; it does not know which way the layers go, nor anything
//! of the modules inside one crate.
//!
//! A module is a top-level file or folder under a crate's `src/`; an arrow
//! is any `crate::module` path outside `#[cfg(test)]` modules and comments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A crate may depend on crates of lower layers
/// only; crates of one layer know nothing of each other.
const LAYERS: &[&[&str]] = &[
    &["tillsyn-core"],
    &["tillsyn-detectors", "tillsyn-extract"],
    &["tillsyn-connectors"],
    &["tillsyn-config"],
    &["tillsyn-rules"],
    &["tillsyn-store"],
    &["tillsyn-draft"],
    &["tillsyn-app"],
    &["tillsyn"],
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every crate of the workspace: its folder and package name.
fn crates() -> Vec<(PathBuf, String)> {
    let root = workspace();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("a members list");
    members
        .split(',')
        .map(|member| member.trim().trim_matches('"'))
        .filter(|member| !member.is_empty())
        .map(|member| {
            let dir = root.join(member);
            let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("member manifest");
            (dir, package_name(&text))
        })
        .collect()
}

fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[package]")
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
        })
        .expect("a package name")
}

/// The workspace crates a manifest depends on (normal dependencies).
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut in_dependencies = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies
            && let Some((name, _)) = line.split_once('=')
            && name.trim().starts_with("tillsyn")
        {
            found.insert(name.trim().to_owned());
        }
    }
    found
}

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&name))
}

/// Text without comments and without `#[cfg(test)] mod … { … }` blocks.
fn production_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_block = (trimmed.starts_with("mod ") || trimmed.starts_with("pub mod "))
            && trimmed
                .find(['{', ';'])
                .is_some_and(|end| trimmed.as_bytes()[end] == b'{');
        if !is_block {
            rest = after;
            continue;
        }
        let open = after.find('{').unwrap_or(after.len());
        let mut depth = 0usize;
        let mut end = after.len();
        for (index, byte) in after.bytes().enumerate().skip(open) {
            match byte {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = index + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The module graph of the crate whose `src/` is `src`: module → modules
/// it names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |path: &Path| {
        let relative = path.strip_prefix(src).expect("under src");
        let first = relative
            .components()
            .next()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        first.trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|path| module_of(path))
        .filter(|module| module != "lib" && module != "main")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|module| (module.clone(), BTreeSet::new()))
        .collect();
    for path in &files {
        let from = module_of(path);
        if !modules.contains(&from) {
            continue;
        }
        let text = production_code(&std::fs::read_to_string(path).expect("source file"));
        for to in named_modules(&text) {
            if to != from && modules.contains(&to) {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

/// The modules `text` names as `crate::name` or inside `use crate::{…}`.
fn named_modules(text: &str) -> BTreeSet<String> {
    let word = |rest: &str| -> String {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            for item in group.split(',') {
                names.insert(word(item.trim()));
            }
        } else {
            names.insert(word(rest));
        }
    }
    names
}

/// One cycle of `graph`, when it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next.as_str()) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|item| item == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if !marks.contains_key(node.as_str())
            && let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut cycles = Vec::new();
    let crates = crates();
    assert!(crates.len() >= 8, "the workspace's crates: {crates:?}");
    for (dir, name) in &crates {
        let graph = module_graph(&dir.join("src"));
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{name}: {}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn every_crate_depends_only_on_lower_layers() {
    let mut wrong = Vec::new();
    for (dir, name) in crates() {
        let Some(layer) = layer_of(&name) else {
            wrong.push(format!(
                "{name} is in no layer: add it to LAYERS and ARCHITECTURE.md"
            ));
            continue;
        };
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
        for dependency in dependencies(&manifest) {
            match layer_of(&dependency) {
                Some(below) if below < layer => {}
                _ => wrong.push(format!("{name} depends on {dependency}")),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

/// The checks themselves can fail: a cycle and a comment, a test module and
/// a grouped import are read as they should be.
#[test]
fn the_checks_see_cycles_and_ignore_tests_and_comments() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(from, to)| (from.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    let mut acyclic = graph.clone();
    acyclic.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&acyclic), None);

    let text = "use crate::{store::Store, rules};\n// crate::report\nfn f() { crate::scan::run(); }\n\
                #[cfg(test)]\nmod tests {\n    use crate::daemon;\n    fn g() { let x = { 1 }; }\n}\n\
                fn h() { crate::output::show(); }\n";
    let named = named_modules(&production_code(text));
    let expected: BTreeSet<String> = ["store", "rules", "scan", "output"]
        .map(str::to_owned)
        .into();
    assert_eq!(named, expected);
    assert_eq!(
        dependencies(
            "[package]\nname = \"x\"\n[dependencies]\ntillsyn-core = { path = \"core\" }\nserde = \"1\"\n[dev-dependencies]\ntillsyn-store = { path = \"store\" }\n"
        ),
        BTreeSet::from(["tillsyn-core".to_owned()])
    );
}
