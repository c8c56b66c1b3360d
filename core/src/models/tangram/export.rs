//! The tables and AnnData a mapping leaves behind, built once so the command
//! line and the browser write byte-identical files.

use super::{Mapping, Mode};
use crate::data::{Annotation, Column, Dataset, Frame, Value};
use crate::io::csv_field;

/// A float as pandas' `to_csv` leaves it: empty for NaN.
pub fn num(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        format!("{v}")
    }
}

impl Mapping {
    /// `obsm['tangram_ct_pred']` as spots x annotation names (None when no
    /// annotation was projected).
    pub fn ct_pred_csv(&self) -> Option<String> {
        let (names, vals) = self.ct_pred.as_ref()?;
        Some(crate::io::table_csv("", names, &self.spots, vals))
    }

    /// `uns['train_genes_df']`.
    pub fn train_genes_csv(&self) -> String {
        let mut t = String::from("gene,train_score,sparsity_sc,sparsity_sp,sparsity_diff\n");
        for g in &self.train_genes_df {
            t.push_str(&format!(
                "{},{},{},{},{}\n",
                csv_field(&g.gene),
                g.train_score,
                g.sparsity_sc,
                g.sparsity_sp,
                g.sparsity_diff
            ));
        }
        t
    }

    /// Each training gene's score and sparsities, for the page's version of
    /// `tg.plot_training_scores`.
    pub fn training_scores(&self) -> crate::bundle::Matrix {
        let g = &self.train_genes_df;
        crate::bundle::Matrix {
            name: "training scores of the training genes".into(),
            rows: g.iter().map(|g| g.gene.clone()).collect(),
            cols: ["train_score", "sparsity_sc", "sparsity_sp", "sparsity_diff"]
                .map(String::from)
                .to_vec(),
            values: g
                .iter()
                .flat_map(|g| {
                    [g.train_score, g.sparsity_sc, g.sparsity_sp, g.sparsity_diff].map(f64::from)
                })
                .collect(),
            plot: crate::bundle::Plot::Scatter,
        }
    }

    /// Every epoch's loss terms (`uns['training_history']`).
    pub fn history_csv(&self) -> String {
        let h = &self.history;
        let constrained = self.mode == Mode::Constrained;
        let mut t = String::from("epoch,total_loss,main_loss,vg_reg,kl_reg,entropy_reg");
        if constrained {
            t.push_str(",count_reg,lambda_f_reg");
        }
        t.push('\n');
        for e in 0..h.total_loss.len() {
            t.push_str(&format!(
                "{e},{},{},{},{},{}",
                num(h.total_loss[e]),
                num(h.main_loss[e]),
                num(h.vg_reg[e]),
                num(h.kl_reg[e]),
                num(h.entropy_reg[e])
            ));
            if constrained {
                t.push_str(&format!(
                    ",{},{}",
                    num(h.count_reg[e]),
                    num(h.lambda_f_reg[e])
                ));
            }
            t.push('\n');
        }
        t
    }

    /// The spatial data with `obsm['tangram_ct_pred']` and
    /// `uns['training_genes']`, as `tg.project_cell_annotations` leaves it.
    pub fn mapped(&self, sp: &Dataset) -> Dataset {
        let mut mapped = sp.clone();
        if let Some((names, vals)) = &self.ct_pred {
            let (t, ns) = (names.len(), self.spots.len());
            let mut frame = Frame::with_index(self.spots.clone());
            for (j, n) in names.iter().enumerate() {
                frame.set(
                    n,
                    Column::Float((0..ns).map(|s| vals[s * t + j] as f64).collect()),
                );
            }
            mapped
                .obsm
                .insert("tangram_ct_pred".into(), Annotation::Frame(frame));
        }
        mapped.uns.insert(
            "training_genes".into(),
            Value::Strings(self.training_genes.clone()),
        );
        mapped
    }
}

impl Mapping {
    /// The browser's view of a run, and the results bundle's content:
    /// `tangram_ct_pred` per spot, the loss curves, and every file the
    /// command line writes for the same run (`sp_mapped.h5ad` included).
    pub fn results(
        &self,
        sp: &Dataset,
        params: serde_json::Value,
    ) -> Result<crate::bundle::Results, crate::io::Error> {
        use crate::bundle::{Curve, Layer, Results};
        let xy = crate::bundle::points(sp);
        let mut layers = Vec::new();
        let mut files = Vec::new();
        if let (Some((names, vals)), Some(csv)) = (&self.ct_pred, self.ct_pred_csv()) {
            layers.push(Layer {
                name: "tangram_ct_pred".into(),
                columns: names.clone(),
                values: vals.clone(),
            });
            files.push(("tangram_ct_pred.csv".into(), csv.into_bytes()));
        }
        files.push((
            "train_genes.csv".into(),
            self.train_genes_csv().into_bytes(),
        ));
        files.push(("history.csv".into(), self.history_csv().into_bytes()));
        files.push((
            "sp_mapped.h5ad".into(),
            crate::io::h5ad_write::write(&self.mapped(sp))?,
        ));
        Ok(Results {
            analysis: <super::analysis::Tangram as crate::analysis::Analysis>::NAME.into(),
            params,
            view: serde_json::Value::Null,
            names: self.spots.clone(),
            xy,
            layers,
            curves: vec![
                Curve {
                    name: "total_loss".into(),
                    values: self.history.total_loss.clone(),
                },
                Curve {
                    name: "score (mean gene cosine)".into(),
                    values: self.history.main_loss.clone(),
                },
            ],
            matrices: vec![self.training_scores()],
            files,
            image: None,
        })
    }
}
