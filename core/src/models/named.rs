//! A dataset together with the name the user knows it by (its file), so
//! every model error can say which input is wrong; and reading label columns.

use std::collections::HashSet;

use crate::data::Dataset;
use crate::io::Error;

/// A dataset with the name the user gave it (file name), for messages.
#[derive(Clone, Copy)]
pub struct Named<'a> {
    pub name: &'a str,
    pub data: &'a Dataset,
}

impl<'a> Named<'a> {
    pub fn new(name: &'a str, data: &'a Dataset) -> Named<'a> {
        Named { name, data }
    }
}

/// Labels of one obs column ("" where missing), with a named error when the
/// column does not exist.
pub fn labels(d: Named, column: &str) -> Result<Vec<String>, Error> {
    let col = d.data.obs.column(column).ok_or_else(|| {
        let names: Vec<&str> = d.data.obs.columns.iter().map(|(n, _)| n.as_str()).collect();
        Error::new(
            d.name,
            &format!("obs['{column}']"),
            format!(
                "no such column; obs has: {}",
                if names.is_empty() {
                    "no columns".to_string()
                } else {
                    names.join(", ")
                }
            ),
        )
    })?;
    Ok((0..col.len()).map(|i| col.text(i)).collect())
}

/// The category order of a categorical obs column.
pub fn categories(d: Named, column: &str) -> Option<Vec<String>> {
    match d.data.obs.column(column)? {
        crate::data::Column::Categorical { categories, .. } => Some(categories.clone()),
        _ => None,
    }
}

/// Distinct labels in order of first appearance (pandas `unique`), missing skipped.
pub fn unique(labels: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    labels
        .iter()
        .filter(|l| !l.is_empty() && seen.insert(l.as_str()))
        .cloned()
        .collect()
}
