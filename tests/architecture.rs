//! The rooms of `src/` and which may use which. Each top-level module is a room; a `crate::room` path in a
//! room's code is a dependency. The allowed graph below is the one drawn in docs/architecture.md: arrows point
//! one way (the front ends over the engine over the store), so a new edge is a design decision that has to
//! be made here, on purpose, not by accident in a `use` line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Room → the rooms it may use. `util` is the floor: every room may use it, it uses none.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "cli",
        &[
            "engine", "executor", "index", "metrics", "pipeline", "runlog", "slurm", "trials",
            "tui",
        ],
    ),
    (
        "tui",
        &[
            "engine", "index", "metrics", "pipeline", "runlog", "slurm", "trials",
        ],
    ),
    (
        "engine",
        &[
            "executor", "index", "metrics", "pipeline", "runlog", "slurm",
        ],
    ),
    ("executor", &["pipeline", "runlog", "slurm"]),
    ("index", &["metrics", "runlog"]),
    ("metrics", &[]),
    // The run directory's naming rule decides which step names can become a directory.
    ("pipeline", &["runlog"]),
    ("runlog", &[]),
    ("slurm", &[]),
    ("trials", &[]),
    ("util", &[]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room a file belongs to: its first folder under `src/`, or its own name for `src/x.rs`.
fn room_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let room = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(room, "lib" | "main")).then(|| room.to_string())
}

/// The rooms named by `crate::X` paths in a file's code (comments and doc comments left out: a comment
/// that mentions another room is no dependency).
fn used_rooms(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut used = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            group_rooms(group, &mut used);
            continue;
        }
        let name = leading_name(rest);
        if !name.is_empty() {
            used.insert(name);
        }
    }
    used
}

fn leading_name(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// `use crate::{a, b::{c, d}}` names the rooms `a` and `b`: only the group's top level counts (rustfmt
/// may spread the group over several lines).
fn group_rooms(group: &str, used: &mut BTreeSet<String>) {
    let mut depth = 0;
    let mut expect_name = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return,
            '}' => depth -= 1,
            ',' if depth == 0 => expect_name = true,
            c if depth == 0 && expect_name && !c.is_whitespace() => {
                let name = leading_name(&group[i..]);
                if !name.is_empty() {
                    used.insert(name);
                }
                expect_name = false;
            }
            _ => {}
        }
    }
}

#[test]
fn rooms_use_only_the_rooms_the_architecture_allows() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(room, uses)| (*room, uses.iter().copied().chain(["util"]).collect()))
        .collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let Some(room) = room_of(file) else { continue };
        let Some(may) = allowed.get(room.as_str()) else {
            wrong.push(format!(
                "{}: room `{room}` is not in the allowed graph (add it to tests/architecture.rs and docs/architecture.md)",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in used_rooms(&text) {
            if used == room || !allowed.contains_key(used.as_str()) {
                // Its own room, or not a room (a macro or item at the crate root).
                continue;
            }
            if !may.contains(used.as_str()) {
                wrong.push(format!(
                    "{}: `{room}` uses `crate::{used}`, which the architecture does not allow",
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_allowed_graph_has_no_cycle() {
    let graph: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    // Depth-first search with colours: a grey node reached again closes a cycle.
    fn visit<'a>(
        n: &'a str,
        g: &BTreeMap<&'a str, &'a [&'a str]>,
        colour: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<String> {
        match colour.get(n) {
            Some(1) => return Some(format!("{} → {n}", path.join(" → "))),
            Some(2) => return None,
            _ => {}
        }
        colour.insert(n, 1);
        path.push(n);
        for m in g.get(n).copied().unwrap_or(&[]) {
            if let Some(c) = visit(m, g, colour, path) {
                return Some(c);
            }
        }
        path.pop();
        colour.insert(n, 2);
        None
    }
    let mut colour = BTreeMap::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut colour, &mut Vec::new()) {
            panic!("the allowed graph has a cycle: {cycle}");
        }
    }
}

#[test]
fn the_scanner_sees_paths_and_groups_but_not_comments() {
    let text = "use crate::index::Index;\nuse crate::{\n    runlog,\n    slurm::{model::Job, cli},\n};\n\
                // crate::tui in a comment\nlet x = crate::util::now(); //! crate::cli\n";
    let used: Vec<String> = used_rooms(text).into_iter().collect();
    assert_eq!(used, ["index", "runlog", "slurm", "util"]);
}
