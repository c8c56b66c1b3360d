//! The architecture's arrows, checked on the source: the app's modules
//! import each other without a cycle (a folder such as `pages/` is one
//! module), `state` sits at the bottom, and the link format imports no model.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `crate::name` references of every app module, by module.
fn app_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut visit = vec![src.clone()];
    while let Some(dir) = visit.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "bin" {
                    visit.push(path);
                }
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let module = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut deps = imports(&text);
            deps.remove(&module);
            graph.entry(module).or_default().extend(deps);
        }
    }
    graph
}

/// The top-level modules a file names through `crate::`, grouped imports
/// (`use crate::{a::{b, c}, d}`) included; comments are left out.
fn imports(text: &str) -> BTreeSet<String> {
    let code: Vec<&str> = text
        .lines()
        .map(|l| l.split("//").next().unwrap())
        .collect();
    let code = code.join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        let Some(group) = rest.strip_prefix('{') else {
            out.insert(ident(rest));
            continue;
        };
        // The group's items at depth 0: each one's first segment.
        let (mut depth, mut start) = (0, 0);
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.insert(ident(&group[start..j]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.insert(ident(&group[start..j]));
                    start = j + 1;
                }
                _ => {}
            }
        }
    }
    out.remove("");
    out
}

/// A cycle in the graph, as the path that closes it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut c = path[i..].to_vec();
            c.push(at.to_string());
            return Some(c);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in g.get(at).into_iter().flatten() {
            if let Some(c) = walk(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| walk(graph, m, &mut vec![], &mut done))
}

#[test]
fn app_modules_import_each_other_without_a_cycle() {
    let g = app_imports();
    for m in ["state", "pages", "run", "results", "ui", "worker", "form"] {
        assert!(g.contains_key(m), "app module {m} not found: {g:?}");
    }
    assert_eq!(cycle(&g), None, "the app's modules import in a circle");
    // The bottom: state holds what every page shares and knows only the
    // messages it carries and where a result is kept across reloads.
    let state: Vec<&String> = g["state"].iter().collect();
    assert_eq!(state, ["keep", "protocol"], "state imports {state:?}");
    assert!(g["protocol"].is_empty() && g["plot"].is_empty() && g["keep"].is_empty());
}

#[test]
fn imports_are_read_from_paths_and_groups() {
    let text = "use crate::{a::{b, c}, d};\nuse crate::e::F; // crate::g\nimpl crate::h::T for X {}\nuse crate::{\n    i,\n    j::k,\n};";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["a", "d", "e", "h", "i", "j"]);
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(cycle(&g), None);
}

#[test]
fn the_link_format_imports_no_model() {
    let share = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/share.rs"))
        .unwrap();
    for model in [
        "crate::models",
        "crate::spatial",
        "crate::prep",
        "crate::embed",
    ] {
        assert!(!share.contains(model), "share.rs names {model}");
    }
    assert!(share.contains("crate::analysis"));
}
