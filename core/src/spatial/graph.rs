//! Spatial neighbour graphs like squidpy's `spatial_neighbors`: k nearest
//! neighbours (directed, self excluded), all pairs within a radius, the
//! Delaunay triangulation, and the Visium hexagonal grid with rings. Each
//! is built per library (image, FOV) when libraries are given and combined
//! block-diagonally, so cells of different images never become neighbours.

use super::kdtree::KdTree;
use crate::io::npz::Csr;

/// A sparse directed graph in CSR form: row i lists i's neighbours (sorted)
/// and the Euclidean distance to each (the ring number in grid mode).
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub n: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub distances: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// The k nearest other points.
    Knn {
        k: usize,
    },
    /// Every other point within the radius (inclusive).
    Radius {
        r: f64,
    },
    Delaunay,
    /// Spots on a grid (hexagonal: 6 neighbours, square: 4); rings > 1 adds
    /// the neighbours' neighbours, the ring number stored as the distance.
    Grid {
        n_neighs: usize,
        n_rings: usize,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Knn { .. } => "knn",
            Kind::Radius { .. } => "radius",
            Kind::Delaunay => "delaunay",
            Kind::Grid { .. } => "grid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub kind: Kind,
    /// Drop edges longer than this percentile of the edge lengths (with
    /// each cell's zero distance to itself counted, as squidpy does).
    pub percentile: Option<f64>,
}

impl Options {
    /// A graph from a form's fields (squidpy's `spatial_neighbors`), or
    /// what is wrong with one.
    pub fn from_form(graph: &str, n_neighs: usize, radius: Option<f64>) -> Result<Options, String> {
        if !(1..=100).contains(&n_neighs) {
            return Err(format!("n_neighs {n_neighs}: expected 1 to 100"));
        }
        let kind = match graph {
            "knn" => Kind::Knn { k: n_neighs },
            "delaunay" => Kind::Delaunay,
            "grid" => Kind::Grid {
                n_neighs,
                n_rings: 1,
            },
            "radius" => match radius {
                Some(r) if r.is_finite() && r > 0.0 => Kind::Radius { r },
                _ => return Err("a radius graph needs a positive radius".into()),
            },
            g => {
                return Err(format!(
                    "graph '{g}': expected knn, radius, delaunay or grid"
                ))
            }
        };
        Ok(Options {
            kind,
            percentile: None,
        })
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            kind: Kind::Knn { k: 6 },
            percentile: None,
        }
    }
}

impl Graph {
    pub fn n_edges(&self) -> usize {
        self.indices.len()
    }

    pub fn neighbours(&self, i: usize) -> &[u32] {
        &self.indices[self.indptr[i]..self.indptr[i + 1]]
    }

    fn from_rows(rows: Vec<Vec<(usize, f64)>>) -> Graph {
        let n = rows.len();
        let mut g = Graph {
            n,
            indptr: Vec::with_capacity(n + 1),
            indices: Vec::new(),
            distances: Vec::new(),
        };
        g.indptr.push(0);
        for mut row in rows {
            row.sort_unstable_by_key(|&(j, _)| j);
            row.dedup_by_key(|&mut (j, _)| j);
            for (j, d) in row {
                g.indices.push(j as u32);
                g.distances.push(d);
            }
            g.indptr.push(g.indices.len());
        }
        g
    }

    /// The connectivities (every edge weighs 1) as scipy CSR.
    pub fn connectivities(&self) -> Csr {
        Csr {
            data: vec![1.0; self.n_edges()],
            ..self.distances_csr()
        }
    }

    pub fn distances_csr(&self) -> Csr {
        Csr {
            shape: [self.n, self.n],
            indptr: self.indptr.clone(),
            indices: self.indices.iter().map(|&j| j as usize).collect(),
            data: self.distances.clone(),
        }
    }

    /// Keeps the edges for which `keep(i, j, distance)` holds.
    fn filter(&self, keep: impl Fn(usize, usize, f64) -> bool) -> Graph {
        let rows = (0..self.n)
            .map(|i| {
                (self.indptr[i]..self.indptr[i + 1])
                    .map(|e| (self.indices[e] as usize, self.distances[e]))
                    .filter(|&(j, d)| keep(i, j, d))
                    .collect()
            })
            .collect();
        Graph::from_rows(rows)
    }
}

/// Builds the graph over `coords` (n points), per library when `libraries`
/// gives each point's library code.
pub fn build(
    coords: &[[f64; 2]],
    libraries: Option<&[u32]>,
    opts: &Options,
) -> Result<Graph, String> {
    check(coords, opts)?;
    let g = match libraries {
        None => build_one(coords, opts.kind)?,
        Some(libs) => {
            if libs.len() != coords.len() {
                return Err(format!(
                    "{} library labels for {} points",
                    libs.len(),
                    coords.len()
                ));
            }
            let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); coords.len()];
            let mut codes: Vec<u32> = libs.to_vec();
            codes.sort_unstable();
            codes.dedup();
            for code in codes {
                let members: Vec<usize> = (0..coords.len()).filter(|&i| libs[i] == code).collect();
                let sub: Vec<[f64; 2]> = members.iter().map(|&i| coords[i]).collect();
                let g = build_one(&sub, opts.kind)?;
                for (a, &i) in members.iter().enumerate() {
                    rows[i] = (g.indptr[a]..g.indptr[a + 1])
                        .map(|e| (members[g.indices[e] as usize], g.distances[e]))
                        .collect();
                }
            }
            Graph::from_rows(rows)
        }
    };
    Ok(match opts.percentile {
        Some(p) => {
            // squidpy's percentile also sees each cell's zero self-distance.
            let mut d = g.distances.clone();
            d.resize(d.len() + g.n, 0.0);
            let cut = percentile(&d, p);
            g.filter(|_, _, d| d <= cut)
        }
        None => g,
    })
}

fn check(coords: &[[f64; 2]], opts: &Options) -> Result<(), String> {
    if let Some(i) = coords
        .iter()
        .position(|p| !p[0].is_finite() || !p[1].is_finite())
    {
        return Err(format!(
            "point {i} has a non-finite coordinate {:?}",
            coords[i]
        ));
    }
    match opts.kind {
        Kind::Knn { k: 0 } => return Err("k must be at least 1".into()),
        Kind::Radius { r } if !(r > 0.0 && r.is_finite()) => {
            return Err(format!("the radius must be a positive number, got {r}"))
        }
        Kind::Grid { n_neighs, n_rings } if n_neighs == 0 || n_rings == 0 => {
            return Err("grid graphs need n_neighs >= 1 and n_rings >= 1".into())
        }
        _ => {}
    }
    if let Some(p) = opts.percentile {
        if matches!(opts.kind, Kind::Grid { .. }) {
            return Err("a percentile cut applies to generic coordinates, not grid graphs".into());
        }
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!("the percentile must be in (0, 100], got {p}"));
        }
    }
    Ok(())
}

fn build_one(coords: &[[f64; 2]], kind: Kind) -> Result<Graph, String> {
    Ok(match kind {
        Kind::Knn { k } => knn(coords, k),
        Kind::Radius { r } => {
            let tree = KdTree::new(coords);
            Graph::from_rows(
                (0..coords.len())
                    .map(|i| {
                        let mut row = tree.within(coords[i], r);
                        row.retain(|&(j, _)| j != i);
                        row
                    })
                    .collect(),
            )
        }
        Kind::Delaunay => delaunay(coords),
        Kind::Grid { n_neighs, n_rings } => grid(coords, n_neighs, n_rings),
    })
}

fn knn(coords: &[[f64; 2]], k: usize) -> Graph {
    let tree = KdTree::new(coords);
    Graph::from_rows(
        (0..coords.len())
            .map(|i| tree.nearest(coords[i], k, Some(i)))
            .collect(),
    )
}

fn delaunay(coords: &[[f64; 2]]) -> Graph {
    let pts: Vec<delaunator::Point> = coords
        .iter()
        .map(|p| delaunator::Point { x: p[0], y: p[1] })
        .collect();
    let tri = delaunator::triangulate(&pts);
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); coords.len()];
    let dist = |a: usize, b: usize| {
        ((coords[a][0] - coords[b][0]).powi(2) + (coords[a][1] - coords[b][1]).powi(2)).sqrt()
    };
    for t in tri.triangles.chunks_exact(3) {
        for (a, b) in [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])] {
            rows[a].push((b, dist(a, b)));
            rows[b].push((a, dist(a, b)));
        }
    }
    Graph::from_rows(rows)
}

/// Spots on a lattice: each spot's `n_neighs` nearest, kept when closer than
/// 1.3 x the median nearest-neighbour distance (so edge spots get fewer).
fn grid(coords: &[[f64; 2]], n_neighs: usize, n_rings: usize) -> Graph {
    let g = knn(coords, n_neighs);
    let cut = 1.3 * median(&g.distances);
    let ring1 = g.filter(|_, _, d| d < cut);
    if n_rings == 1 {
        return Graph {
            distances: vec![1.0; ring1.n_edges()],
            ..ring1
        };
    }
    // Breadth-first rings: a spot first reached in step r is in ring r.
    let rows = (0..coords.len())
        .map(|s| {
            let mut seen = std::collections::HashMap::from([(s, 0usize)]);
            let mut frontier = vec![s];
            for ring in 1..=n_rings {
                let mut next = Vec::new();
                for &u in &frontier {
                    for &v in ring1.neighbours(u) {
                        seen.entry(v as usize).or_insert_with(|| {
                            next.push(v as usize);
                            ring
                        });
                    }
                }
                frontier = next;
            }
            seen.into_iter()
                .filter(|&(v, _)| v != s)
                .map(|(v, r)| (v, r as f64))
                .collect()
        })
        .collect();
    Graph::from_rows(rows)
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// numpy's default (linear) percentile.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    let pos = p / 100.0 * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(rows: usize, cols: usize) -> Vec<[f64; 2]> {
        let mut v = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                let x = c as f64 * 100.0 + if r % 2 == 1 { 50.0 } else { 0.0 };
                v.push([x, r as f64 * 100.0 * 3f64.sqrt() / 2.0]);
            }
        }
        v
    }

    #[test]
    fn hexagonal_grid_has_six_neighbours_inside_and_rings() {
        let pts = hex(9, 9);
        let opts = Options {
            kind: Kind::Grid {
                n_neighs: 6,
                n_rings: 1,
            },
            percentile: None,
        };
        let g = build(&pts, None, &opts).unwrap();
        let centre = 4 * 9 + 4;
        assert_eq!(g.neighbours(centre).len(), 6);
        assert!(g.neighbours(0).len() < 6);
        let opts = Options {
            kind: Kind::Grid {
                n_neighs: 6,
                n_rings: 2,
            },
            percentile: None,
        };
        let g2 = build(&pts, None, &opts).unwrap();
        let row = g2.indptr[centre]..g2.indptr[centre + 1];
        assert_eq!(row.len(), 18);
        assert_eq!(g2.distances[row].iter().filter(|&&d| d == 2.0).count(), 12);
    }

    #[test]
    fn libraries_never_connect_and_radius_is_symmetric() {
        // Two copies of the same points, in different libraries.
        let mut pts = hex(4, 4);
        pts.extend(hex(4, 4));
        let libs: Vec<u32> = (0..32).map(|i| (i >= 16) as u32).collect();
        let opts = Options {
            kind: Kind::Radius { r: 101.0 },
            percentile: None,
        };
        let g = build(&pts, Some(&libs), &opts).unwrap();
        for i in 0..32 {
            for &j in g.neighbours(i) {
                assert_eq!(libs[i], libs[j as usize]);
                assert!(g.neighbours(j as usize).contains(&(i as u32)));
                assert_ne!(i, j as usize);
            }
        }
        let d = build(
            &pts,
            Some(&libs),
            &Options {
                kind: Kind::Delaunay,
                percentile: None,
            },
        )
        .unwrap();
        assert!(
            d.n_edges() > 0
                && (0..32).all(|i| d.neighbours(i).iter().all(|&j| libs[j as usize] == libs[i]))
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let pts = hex(2, 2);
        let e = build(
            &pts,
            None,
            &Options {
                kind: Kind::Radius { r: -1.0 },
                percentile: None,
            },
        )
        .unwrap_err();
        assert!(e.contains("radius"), "{e}");
        let e = build(&[[0.0, f64::NAN]], None, &Options::default()).unwrap_err();
        assert!(e.contains("point 0"), "{e}");
    }
}
