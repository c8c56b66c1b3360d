//! Pairing a transcript table with a protein table measured on the same or
//! an adjacent section: by shared cell id, by nearest neighbour within a
//! radius (cell-resolution pairs), or by binning protein cells into Visium
//! spots (55 µm spots: the cells within 27.5 µm of a spot's centre).

use crate::spatial::kdtree::KdTree;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Rows with the same obs name.
    Id,
    /// Each transcript cell takes the nearest protein cell within `radius`.
    Nearest { radius: f64 },
    /// Protein cells within `radius` of each spot centre, summed or averaged.
    Bin { radius: f64, mean: bool },
}

/// Unmatched transcript rows: dropped (the honest default), or given their
/// nearest protein cell (or, for empty spots, the nearest spot's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    Drop,
    Pad,
}

/// Protein values aligned to the kept transcript rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    /// Kept transcript rows, in order.
    pub rows: Vec<usize>,
    /// kept × proteins, row-major.
    pub protein: Vec<f32>,
    /// Rows matched by the rule itself.
    pub matched: usize,
    /// Rows kept only because of padding.
    pub padded: usize,
    /// Rows dropped.
    pub dropped: usize,
    /// Protein cells used by more than one transcript row (nearest mode).
    pub shared_partners: usize,
    /// Protein cells per spot (bin mode), over the kept spots.
    pub cells_per_spot: Vec<usize>,
}

impl Paired {
    pub fn report(&self) -> String {
        let mut s = format!(
            "{} matched, {} padded, {} dropped",
            self.matched, self.padded, self.dropped
        );
        if self.shared_partners > 0 {
            s.push_str(&format!(
                "; {} protein cells matched more than one transcript cell",
                self.shared_partners
            ));
        }
        if !self.cells_per_spot.is_empty() {
            let n = self.cells_per_spot.len() as f64;
            let mean = self.cells_per_spot.iter().sum::<usize>() as f64 / n;
            s.push_str(&format!("; {mean:.1} protein cells per spot on average"));
        }
        s
    }
}

/// The transcript rows: names and coordinates (their values are not
/// needed to pair them).
#[derive(Clone, Copy)]
pub struct Points<'a> {
    pub ids: &'a [String],
    pub coords: &'a [[f64; 2]],
}

/// The protein rows: names, coordinates and row-major values (n × p).
pub struct Side<'a> {
    pub ids: &'a [String],
    pub coords: &'a [[f64; 2]],
    pub values: &'a [f32],
    pub n_features: usize,
}

pub fn pair(
    tx: &Points,
    prot: &Side,
    method: Method,
    unmatched: Unmatched,
) -> Result<Paired, String> {
    let p = prot.n_features;
    let row = |i: usize| &prot.values[i * p..(i + 1) * p];
    let mut out = Paired {
        rows: Vec::new(),
        protein: Vec::new(),
        matched: 0,
        padded: 0,
        dropped: 0,
        shared_partners: 0,
        cells_per_spot: Vec::new(),
    };
    match method {
        Method::Id => {
            let index: std::collections::HashMap<&str, usize> = prot
                .ids
                .iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), i))
                .collect();
            let tree = (unmatched == Unmatched::Pad).then(|| KdTree::new(prot.coords));
            for (i, id) in tx.ids.iter().enumerate() {
                if let Some(&j) = index.get(id.as_str()) {
                    out.rows.push(i);
                    out.protein.extend_from_slice(row(j));
                    out.matched += 1;
                } else if let Some(t) = &tree {
                    let (j, _) = t.nearest(tx.coords[i], 1, None)[0];
                    out.rows.push(i);
                    out.protein.extend_from_slice(row(j));
                    out.padded += 1;
                } else {
                    out.dropped += 1;
                }
            }
            if out.matched == 0 {
                return Err(format!(
                    "no cell id is in both tables (e.g. '{}' and '{}'); pair by position with --pair nearest",
                    tx.ids.first().map_or("", String::as_str),
                    prot.ids.first().map_or("", String::as_str)
                ));
            }
        }
        Method::Nearest { radius } => {
            check_radius(radius)?;
            let tree = KdTree::new(prot.coords);
            let mut uses = vec![0usize; prot.ids.len()];
            for i in 0..tx.ids.len() {
                let Some(&(j, d)) = tree.nearest(tx.coords[i], 1, None).first() else {
                    out.dropped += 1;
                    continue;
                };
                if d <= radius {
                    out.matched += 1;
                } else if unmatched == Unmatched::Pad {
                    out.padded += 1;
                } else {
                    out.dropped += 1;
                    continue;
                }
                uses[j] += 1;
                out.rows.push(i);
                out.protein.extend_from_slice(row(j));
            }
            out.shared_partners = uses.iter().filter(|&&u| u > 1).count();
        }
        Method::Bin { radius, mean } => {
            check_radius(radius)?;
            let tree = KdTree::new(prot.coords);
            let mut empty = Vec::new();
            for i in 0..tx.ids.len() {
                let inside = tree.within(tx.coords[i], radius);
                if inside.is_empty() {
                    empty.push(i);
                    continue;
                }
                let mut v = vec![0f32; p];
                for &(j, _) in &inside {
                    for (a, b) in v.iter_mut().zip(row(j)) {
                        *a += b;
                    }
                }
                if mean {
                    v.iter_mut().for_each(|a| *a /= inside.len() as f32);
                }
                out.rows.push(i);
                out.protein.extend(v);
                out.cells_per_spot.push(inside.len());
                out.matched += 1;
            }
            if unmatched == Unmatched::Pad && out.matched > 0 {
                // Empty spots take the values of the nearest spot with cells.
                let kept: Vec<[f64; 2]> = out.rows.iter().map(|&i| tx.coords[i]).collect();
                let spots = KdTree::new(&kept);
                let mut rows: Vec<(usize, Vec<f32>)> = out
                    .rows
                    .iter()
                    .enumerate()
                    .map(|(a, &i)| (i, out.protein[a * p..(a + 1) * p].to_vec()))
                    .collect();
                for &i in &empty {
                    let (a, _) = spots.nearest(tx.coords[i], 1, None)[0];
                    rows.push((i, out.protein[a * p..(a + 1) * p].to_vec()));
                    out.cells_per_spot.push(0);
                }
                rows.sort_by_key(|r| r.0);
                out.padded = empty.len();
                out.rows = rows.iter().map(|r| r.0).collect();
                out.protein = rows.into_iter().flat_map(|r| r.1).collect();
            } else {
                out.dropped = empty.len();
            }
        }
    }
    if out.rows.is_empty() {
        return Err(format!(
            "no transcript row found a protein partner ({}); check that both tables use the same coordinate units, or pass --unmatched pad",
            out.report()
        ));
    }
    Ok(out)
}

fn check_radius(r: f64) -> Result<(), String> {
    if r > 0.0 && r.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "the pairing radius must be a positive number, got {r}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_rules() {
        let ids: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
        let tx_xy = [[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [100.0, 100.0]];
        let pr_ids: Vec<String> = ["c1", "c0", "x", "c2"].map(String::from).to_vec();
        let pr_xy = [[10.5, 0.0], [0.0, 1.0], [21.0, 0.0], [19.0, 0.0]];
        let pr_val = [1.0f32, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0];
        let tx = Points {
            ids: &ids,
            coords: &tx_xy,
        };
        let pr = Side {
            ids: &pr_ids,
            coords: &pr_xy,
            values: &pr_val,
            n_features: 2,
        };
        let by_id = pair(&tx, &pr, Method::Id, Unmatched::Drop).unwrap();
        assert_eq!(by_id.rows, vec![0, 1, 2]);
        assert_eq!(by_id.protein, vec![2.0, 20.0, 1.0, 10.0, 4.0, 40.0]);
        assert_eq!(by_id.dropped, 1);
        let near = pair(&tx, &pr, Method::Nearest { radius: 5.0 }, Unmatched::Drop).unwrap();
        assert_eq!(near.rows, vec![0, 1, 2]);
        assert_eq!(near.protein[..2], [2.0, 20.0]);
        assert_eq!((near.matched, near.dropped), (3, 1));
        let padded = pair(&tx, &pr, Method::Nearest { radius: 5.0 }, Unmatched::Pad).unwrap();
        assert_eq!((padded.rows.len(), padded.padded), (4, 1));
        // Spot at 20: cells at 19 and 21 (radius 1.5), summed and averaged.
        let bin = pair(
            &tx,
            &pr,
            Method::Bin {
                radius: 1.5,
                mean: false,
            },
            Unmatched::Drop,
        )
        .unwrap();
        assert_eq!(bin.rows, vec![0, 1, 2]);
        assert_eq!(bin.protein[4..], [7.0, 70.0]);
        let mean = pair(
            &tx,
            &pr,
            Method::Bin {
                radius: 1.5,
                mean: true,
            },
            Unmatched::Drop,
        )
        .unwrap();
        assert_eq!(mean.protein[4..], [3.5, 35.0]);
        assert_eq!(mean.cells_per_spot, vec![1, 1, 2]);
        let far = Points {
            coords: &[[1e6, 1e6]; 4],
            ..tx
        };
        let e = pair(&far, &pr, Method::Nearest { radius: 5.0 }, Unmatched::Drop).unwrap_err();
        assert!(e.contains("same coordinate units"), "{e}");
    }
}
