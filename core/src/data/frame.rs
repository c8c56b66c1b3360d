//! obs / var frames: a string index plus typed columns, in file order.

use std::collections::HashSet;

/// One typed column of a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Str(Vec<String>),
    /// pandas Categorical: `codes[i] == -1` means missing.
    Categorical {
        codes: Vec<i32>,
        categories: Vec<String>,
        ordered: bool,
    },
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Str(v) => v.len(),
            Column::Categorical { codes, .. } => codes.len(),
            Column::Int(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name shown in `tessera info` and the dataset card.
    pub fn kind(&self) -> &'static str {
        match self {
            Column::Str(_) => "string",
            Column::Categorical { .. } => "categorical",
            Column::Int(_) => "integer",
            Column::Float(_) => "float",
            Column::Bool(_) => "bool",
        }
    }

    /// Builds a categorical from labels, categories sorted like pandas does.
    pub fn categorical_from(labels: &[String]) -> Column {
        let mut categories: Vec<String> = labels.to_vec();
        categories.sort();
        categories.dedup();
        let codes = labels
            .iter()
            .map(|l| categories.binary_search(l).map_or(-1, |i| i as i32))
            .collect();
        Column::Categorical {
            codes,
            categories,
            ordered: false,
        }
    }

    /// The value of row `i` as text (missing categorical values are empty).
    pub fn text(&self, i: usize) -> String {
        match self {
            Column::Str(v) => v[i].clone(),
            Column::Categorical {
                codes, categories, ..
            } => usize::try_from(codes[i])
                .ok()
                .and_then(|c| categories.get(c).cloned())
                .unwrap_or_default(),
            Column::Int(v) => v[i].to_string(),
            Column::Float(v) => v[i].to_string(),
            Column::Bool(v) => v[i].to_string(),
        }
    }

    /// Keeps the rows in `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Column {
        fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&r| v[r].clone()).collect()
        }
        match self {
            Column::Str(v) => Column::Str(pick(v, rows)),
            Column::Categorical {
                codes,
                categories,
                ordered,
            } => Column::Categorical {
                codes: pick(codes, rows),
                categories: categories.clone(),
                ordered: *ordered,
            },
            Column::Int(v) => Column::Int(pick(v, rows)),
            Column::Float(v) => Column::Float(pick(v, rows)),
            Column::Bool(v) => Column::Bool(pick(v, rows)),
        }
    }
}

/// A data frame: index of row names and named typed columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub index: Vec<String>,
    /// The name anndata stores in the `_index` attribute (`_index` if unnamed).
    pub index_name: Option<String>,
    pub columns: Vec<(String, Column)>,
}

impl Frame {
    pub fn with_index(index: Vec<String>) -> Frame {
        Frame {
            index,
            ..Frame::default()
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// Adds or replaces a column.
    pub fn set(&mut self, name: &str, col: Column) {
        match self.columns.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = col,
            None => self.columns.push((name.to_string(), col)),
        }
    }

    /// The first index value that occurs twice, if any.
    pub fn first_duplicate(&self) -> Option<&str> {
        let mut seen = HashSet::with_capacity(self.index.len());
        self.index
            .iter()
            .find(|n| !seen.insert(n.as_str()))
            .map(String::as_str)
    }

    pub fn take(&self, rows: &[usize]) -> Frame {
        Frame {
            index: rows.iter().map(|&r| self.index[r].clone()).collect(),
            index_name: self.index_name.clone(),
            columns: self
                .columns
                .iter()
                .map(|(n, c)| (n.clone(), c.take(rows)))
                .collect(),
        }
    }

    /// Every column has one value per row and categorical codes are in range.
    pub fn check(&self, what: &str) -> Result<(), String> {
        for (name, col) in &self.columns {
            if col.len() != self.len() {
                return Err(format!(
                    "{what}/{name} has {} values but {what} has {} rows",
                    col.len(),
                    self.len()
                ));
            }
            if let Column::Categorical {
                codes, categories, ..
            } = col
            {
                if let Some(bad) = codes
                    .iter()
                    .find(|&&c| c < -1 || c >= categories.len() as i32)
                {
                    return Err(format!(
                        "{what}/{name} has category code {bad} but only {} categories",
                        categories.len()
                    ));
                }
            }
        }
        Ok(())
    }
}
