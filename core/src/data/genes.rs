//! Gene names: anndata's `var_names_make_unique` and a case-insensitive matcher
//! (references and spatial panels often differ only in case: `Gad1` vs `gad1`).

use std::collections::{HashMap, HashSet};

/// Renames repeats the way anndata does: the second `A` becomes `A-1`, the
/// third `A-2`, skipping names that already exist.
pub fn var_names_make_unique(names: &mut [String]) {
    let mut taken: HashSet<String> = names.iter().cloned().collect();
    let mut first: HashSet<String> = HashSet::new();
    let mut counter: HashMap<String, usize> = HashMap::new();
    for name in names.iter_mut() {
        if first.insert(name.clone()) {
            continue;
        }
        let count = counter.entry(name.clone()).or_insert(0);
        loop {
            *count += 1;
            let candidate = format!("{name}-{count}");
            if taken.insert(candidate.clone()) {
                *name = candidate;
                break;
            }
        }
    }
}

/// Finds genes by name regardless of case; symbols and ids both resolve.
#[derive(Debug, Clone, Default)]
pub struct GeneMatcher {
    lookup: HashMap<String, usize>,
}

impl GeneMatcher {
    /// `symbols` and (optionally) `ids` are per-gene; the first match wins.
    pub fn new(symbols: &[String], ids: Option<&[String]>) -> GeneMatcher {
        let mut lookup = HashMap::new();
        for names in std::iter::once(symbols).chain(ids) {
            for (i, n) in names.iter().enumerate() {
                lookup.entry(n.to_lowercase()).or_insert(i);
            }
        }
        GeneMatcher { lookup }
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.lookup.get(&name.to_lowercase()).copied()
    }

    /// Pairs (i in `other`, j in self) for every name of `other` found here.
    pub fn shared(&self, other: &[String]) -> Vec<(usize, usize)> {
        other
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.find(n).map(|j| (i, j)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn make_unique_matches_anndata() {
        let mut names = s(&["A", "B", "A", "A", "A-1"]);
        var_names_make_unique(&mut names);
        // The first repeat would clash with the existing A-1, so it skips to A-2.
        assert_eq!(names, s(&["A", "B", "A-2", "A-3", "A-1"]));
        let mut plain = s(&["x", "x", "x"]);
        var_names_make_unique(&mut plain);
        assert_eq!(plain, s(&["x", "x-1", "x-2"]));
    }

    #[test]
    fn matcher_ignores_case_and_knows_ids() {
        let m = GeneMatcher::new(&s(&["Gad1", "Rnd3"]), Some(&s(&["ENSMUSG1", "ENSMUSG2"])));
        assert_eq!(m.find("gad1"), Some(0));
        assert_eq!(m.find("GAD1"), Some(0));
        assert_eq!(m.find("ensmusg2"), Some(1));
        assert_eq!(m.find("Sst"), None);
        assert_eq!(m.shared(&s(&["rnd3", "x", "Gad1"])), vec![(0, 1), (2, 0)]);
    }
}
