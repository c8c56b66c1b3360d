//! Naming factors from marker lists, and cells from their dominant factor.
//!
//! Weighted score (the preprint's text): per factor the top 10 genes and
//! top 5 proteins by loading; for a cell type T, gene score = share of T's
//! marker genes among those genes, protein score likewise; combined =
//! (1.0 · genes + 1.5 · proteins) / 2.5 over the modalities T has markers
//! in. Correlation (its code): Pearson r of the factor's cell loadings with
//! the mean normalised expression of T's markers. A factor nobody scores on
//! is `Unknown`. The code takes the largest |r|; a negative r says the
//! factor is *not* T, so here only positive r counts.

use std::collections::BTreeMap;

use super::joint::Joint;

pub const UNKNOWN: &str = "Unknown";

/// Cell type → marker genes and marker proteins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Markers {
    pub types: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

impl Markers {
    /// JSON `{"T cells": {"genes": [...], "proteins": [...]}, ...}` (a bare
    /// list means genes), or CSV with columns `cell_type,marker[,modality]`
    /// (modality `gene` or `protein`; without it a marker is looked up in both).
    pub fn parse(name: &str, text: &str) -> Result<Markers, String> {
        // Spreadsheet exports often start with a byte-order mark.
        let text = text.trim_start_matches('\u{feff}');
        let mut m = Markers::default();
        if text.trim_start().starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("{name}: not valid JSON: {e}"))?;
            let obj = v
                .as_object()
                .ok_or(format!("{name}: expected an object of cell types"))?;
            for (t, spec) in obj {
                let list = |v: Option<&serde_json::Value>| -> Result<Vec<String>, String> {
                    match v {
                        None => Ok(Vec::new()),
                        Some(serde_json::Value::Array(a)) => a
                            .iter()
                            .map(|x| {
                                x.as_str()
                                    .map(String::from)
                                    .ok_or(format!("{name}: '{t}': markers must be strings"))
                            })
                            .collect(),
                        Some(_) => Err(format!("{name}: '{t}': expected a list of markers")),
                    }
                };
                let entry = match spec {
                    serde_json::Value::Array(_) => (list(Some(spec))?, Vec::new()),
                    serde_json::Value::Object(o) => (list(o.get("genes"))?, list(o.get("proteins"))?),
                    _ => return Err(format!("{name}: '{t}': expected a list or {{\"genes\": [...], \"proteins\": [...]}}")),
                };
                m.types.insert(t.clone(), entry);
            }
        } else {
            let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
            let head: Vec<String> = r
                .headers()
                .map_err(|e| format!("{name}: {e}"))?
                .iter()
                .map(|h| h.trim().to_lowercase())
                .collect();
            let col = |k: &str| head.iter().position(|h| h == k);
            let (ct, mk) = col("cell_type").zip(col("marker")).ok_or(format!(
                "{name}: expected columns cell_type,marker[,modality], found {head:?}"
            ))?;
            let md = col("modality");
            for (line, rec) in r.records().enumerate() {
                let rec = rec.map_err(|e| format!("{name}: line {}: {e}", line + 2))?;
                let (t, marker) = (
                    rec.get(ct).unwrap_or("").to_string(),
                    rec.get(mk).unwrap_or("").to_string(),
                );
                if t.is_empty() || marker.is_empty() {
                    return Err(format!(
                        "{name}: line {}: empty cell_type or marker",
                        line + 2
                    ));
                }
                let e = m.types.entry(t).or_default();
                match md
                    .and_then(|c| rec.get(c))
                    .map(str::to_lowercase)
                    .as_deref()
                {
                    Some("protein") => e.1.push(marker),
                    Some("gene") | Some("rna") | Some("transcript") => e.0.push(marker),
                    None | Some("") => {
                        e.0.push(marker.clone());
                        e.1.push(marker);
                    }
                    Some(other) => {
                        return Err(format!(
                            "{name}: line {}: modality '{other}' (expected gene or protein)",
                            line + 2
                        ))
                    }
                }
            }
        }
        if m.types.is_empty() {
            return Err(format!("{name}: no cell types"));
        }
        Ok(m)
    }

    /// The JSON form `parse` reads.
    pub fn to_json(&self) -> String {
        let obj: serde_json::Map<String, serde_json::Value> = self
            .types
            .iter()
            .map(|(t, (genes, proteins))| {
                (
                    t.clone(),
                    serde_json::json!({ "genes": genes, "proteins": proteins }),
                )
            })
            .collect();
        serde_json::to_string_pretty(&obj).expect("json")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Weighted,
    Correlation,
}

/// One factor's name and evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorLabel {
    pub cell_type: String,
    pub score: f64,
    pub top_genes: Vec<String>,
    pub top_proteins: Vec<String>,
}

fn top(loadings: &[f32], k: usize, factor: usize, names: &[String], n: usize) -> Vec<String> {
    let rows = names.len();
    let mut idx: Vec<usize> = (0..rows).collect();
    idx.sort_by(|&a, &b| {
        loadings[b * k + factor]
            .total_cmp(&loadings[a * k + factor])
            .then(a.cmp(&b))
    });
    idx.into_iter()
        .take(n)
        .filter(|&i| loadings[i * k + factor] > 0.0)
        .map(|i| names[i].clone())
        .collect()
}

/// Labels every factor. `genes` and `proteins` name the joint fit's columns.
pub fn label_factors(
    j: &Joint,
    genes: &[String],
    proteins: &[String],
    markers: &Markers,
    how: Method,
) -> Vec<FactorLabel> {
    let k = j.k;
    let n = j.n_cells;
    let lower = |v: &[String]| -> Vec<String> { v.iter().map(|s| s.to_lowercase()).collect() };
    let (gl, pl) = (lower(genes), lower(proteins));
    (0..k)
        .map(|f| {
            let top_genes = top(&j.w_transcript, k, f, genes, 10);
            let top_proteins = top(&j.w_protein, k, f, proteins, 5);
            let (tg, tp) = (lower(&top_genes), lower(&top_proteins));
            let mut best = (UNKNOWN.to_string(), 0.0);
            for (t, (mg, mp)) in &markers.types {
                let score = match how {
                    Method::Weighted => {
                        let share = |m: &[String], top: &[String]| {
                            let hits = m.iter().filter(|x| top.contains(&x.to_lowercase())).count();
                            hits as f64 / m.len() as f64
                        };
                        let (mut num, mut den) = (0.0, 0.0);
                        if !mg.is_empty() {
                            num += share(mg, &tg);
                            den += 1.0;
                        }
                        if !mp.is_empty() {
                            num += 1.5 * share(mp, &tp);
                            den += 1.5;
                        }
                        if den > 0.0 {
                            num / den
                        } else {
                            0.0
                        }
                    }
                    Method::Correlation => {
                        // Mean normalised expression of T's markers, per cell.
                        let cols: Vec<(bool, usize)> = mg
                            .iter()
                            .filter_map(|m| {
                                gl.iter()
                                    .position(|g| *g == m.to_lowercase())
                                    .map(|c| (true, c))
                            })
                            .chain(mp.iter().filter_map(|m| {
                                pl.iter()
                                    .position(|p| *p == m.to_lowercase())
                                    .map(|c| (false, c))
                            }))
                            .collect();
                        if cols.is_empty() {
                            0.0
                        } else {
                            let (gk, pk) = (genes.len(), proteins.len());
                            let expr: Vec<f64> = (0..n)
                                .map(|i| {
                                    cols.iter()
                                        .map(|&(is_gene, c)| {
                                            if is_gene {
                                                j.x_transcript[i * gk + c] as f64
                                            } else {
                                                j.x_protein[i * pk + c] as f64
                                            }
                                        })
                                        .sum::<f64>()
                                        / cols.len() as f64
                                })
                                .collect();
                            let act: Vec<f64> =
                                (0..n).map(|i| j.cell_loadings[i * k + f] as f64).collect();
                            // A constant marker mean says nothing: no score.
                            let r = crate::models::pearson(&act, &expr);
                            if r.is_finite() {
                                r
                            } else {
                                0.0
                            }
                        }
                    }
                };
                if score > best.1 {
                    best = (t.clone(), score);
                }
            }
            FactorLabel {
                cell_type: best.0,
                score: best.1,
                top_genes,
                top_proteins,
            }
        })
        .collect()
}

/// Each cell's dominant factor and its share of the cell's signal. A
/// factor's weight in a cell is its loading times the factor's total
/// feature loading (its share of the cell's reconstruction), so the answer
/// does not depend on how NMF happened to scale W against H.
pub fn dominant(j: &Joint) -> Vec<(usize, f64)> {
    let k = j.k;
    let mass: Vec<f64> = (0..k)
        .map(|f| {
            let col = |w: &[f32]| w.chunks_exact(k).map(|r| r[f] as f64).sum::<f64>();
            col(&j.w_transcript) + col(&j.w_protein)
        })
        .collect();
    (0..j.n_cells)
        .map(|i| {
            let part: Vec<f64> = (0..k)
                .map(|f| j.cell_loadings[i * k + f] as f64 * mass[f])
                .collect();
            let (f, &v) = part
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                .expect("k >= 1");
            let total: f64 = part.iter().sum();
            (f, if total > 0.0 { v / total } else { 0.0 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_files_parse_and_fail_clearly() {
        let j = Markers::parse(
            "m.json",
            r#"{"T": {"genes": ["Cd3e"], "proteins": ["CD3"]}, "B": ["Cd19"]}"#,
        )
        .unwrap();
        assert_eq!(j.types["T"], (vec!["Cd3e".into()], vec!["CD3".into()]));
        assert_eq!(j.types["B"].0, vec!["Cd19".to_string()]);
        let c = Markers::parse(
            "m.csv",
            "cell_type,marker,modality\nT,Cd3e,gene\nT,CD3,protein\nB,CD19,\n",
        )
        .unwrap();
        assert_eq!(c.types["T"], (vec!["Cd3e".into()], vec!["CD3".into()]));
        assert_eq!(c.types["B"], (vec!["CD19".into()], vec!["CD19".into()]));
        assert_eq!(Markers::parse("again.json", &j.to_json()).unwrap(), j);
        let e = Markers::parse("m.csv", "type,gene\nT,Cd3e\n").unwrap_err();
        assert!(e.contains("cell_type,marker"), "{e}");
        assert!(Markers::parse("m.json", "{\"T\": 3}")
            .unwrap_err()
            .contains("'T'"));
        assert!(Markers::parse("m.json", "{\"T\": [")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(Markers::parse("m.json", "{\"T\": [1]}")
            .unwrap_err()
            .contains("strings"));
        assert!(Markers::parse("m.json", "{}")
            .unwrap_err()
            .contains("no cell types"));
        let e = Markers::parse("m.csv", "cell_type,marker,modality\nT,Cd3e,lipid\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("lipid"), "{e}");
        let e = Markers::parse("m.csv", "cell_type,marker\nT,\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("empty"), "{e}");
        let bom = Markers::parse("m.csv", "\u{feff}cell_type,marker\nT,Cd3e\n").unwrap();
        assert_eq!(bom.types["T"].0, vec!["Cd3e".to_string()]);
    }
}
