//! A 2-D k-d tree for neighbour queries on cell and spot coordinates:
//! built once in O(n log n) by median splits, then k-nearest and
//! within-radius queries in O(log n + output) each.

const LEAF: usize = 16;

/// Points reordered so every node's points are contiguous; nodes are stored
/// in an implicit layout built by recursion.
pub struct KdTree {
    points: Vec<[f64; 2]>,
    /// Original index of each reordered point.
    order: Vec<u32>,
    nodes: Vec<Node>,
}

struct Node {
    start: u32,
    end: u32,
    /// Bounding box of the node's points.
    lo: [f64; 2],
    hi: [f64; 2],
    /// Children, or `u32::MAX` for a leaf.
    left: u32,
    right: u32,
}

impl KdTree {
    pub fn new(points: &[[f64; 2]]) -> KdTree {
        let mut tree = KdTree {
            points: points.to_vec(),
            order: (0..points.len() as u32).collect(),
            nodes: Vec::with_capacity(2 * points.len() / LEAF + 1),
        };
        if !points.is_empty() {
            tree.build(0, points.len());
        }
        tree
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    fn build(&mut self, start: usize, end: usize) -> u32 {
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for p in &self.points[start..end] {
            for a in 0..2 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            start: start as u32,
            end: end as u32,
            lo,
            hi,
            left: u32::MAX,
            right: u32::MAX,
        });
        if end - start > LEAF {
            let axis = usize::from(hi[1] - lo[1] > hi[0] - lo[0]);
            let mid = start + (end - start) / 2;
            // Reorder points and their indices together around the median.
            let mut idx: Vec<usize> = (start..end).collect();
            idx.select_nth_unstable_by(mid - start, |&a, &b| {
                self.points[a][axis].total_cmp(&self.points[b][axis])
            });
            let pts: Vec<[f64; 2]> = idx.iter().map(|&i| self.points[i]).collect();
            let ord: Vec<u32> = idx.iter().map(|&i| self.order[i]).collect();
            self.points[start..end].copy_from_slice(&pts);
            self.order[start..end].copy_from_slice(&ord);
            let left = self.build(start, mid);
            let right = self.build(mid, end);
            self.nodes[id as usize].left = left;
            self.nodes[id as usize].right = right;
        }
        id
    }

    /// Squared distance from `q` to the node's bounding box.
    fn box_d2(&self, node: &Node, q: [f64; 2]) -> f64 {
        let gap = |a: usize| (node.lo[a] - q[a]).max(q[a] - node.hi[a]).max(0.0);
        gap(0).powi(2) + gap(1).powi(2)
    }

    /// The k points nearest `q` as (index, distance), nearest first; ties
    /// at equal distance go to the lower index. `skip` leaves one point out
    /// (the query point itself).
    pub fn nearest(&self, q: [f64; 2], k: usize, skip: Option<usize>) -> Vec<(usize, f64)> {
        let mut best: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let mut stack = vec![0u32];
        while let Some(id) = stack.pop() {
            let node = &self.nodes[id as usize];
            let bound = if best.len() == k {
                best[k - 1].0
            } else {
                f64::INFINITY
            };
            if self.box_d2(node, q) > bound {
                continue;
            }
            if node.left == u32::MAX {
                for i in node.start as usize..node.end as usize {
                    let j = self.order[i];
                    if skip == Some(j as usize) {
                        continue;
                    }
                    let p = self.points[i];
                    let d2 = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2);
                    let key = (d2, j);
                    if best.len() == k && !lt(key, best[k - 1]) {
                        continue;
                    }
                    let at = best.partition_point(|&b| lt(b, key));
                    best.insert(at, key);
                    best.truncate(k);
                }
            } else {
                // Visit the nearer child first: push it last.
                let (l, r) = (node.left, node.right);
                let dl = self.box_d2(&self.nodes[l as usize], q);
                let dr = self.box_d2(&self.nodes[r as usize], q);
                if dl <= dr {
                    stack.extend([r, l]);
                } else {
                    stack.extend([l, r]);
                }
            }
        }
        best.into_iter()
            .map(|(d2, j)| (j as usize, d2.sqrt()))
            .collect()
    }

    /// Every point within distance `r` of `q` (inclusive), as (index,
    /// distance), in index order.
    pub fn within(&self, q: [f64; 2], r: f64) -> Vec<(usize, f64)> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        let r2 = r * r;
        let mut stack = vec![0u32];
        while let Some(id) = stack.pop() {
            let node = &self.nodes[id as usize];
            if self.box_d2(node, q) > r2 {
                continue;
            }
            if node.left == u32::MAX {
                for i in node.start as usize..node.end as usize {
                    let p = self.points[i];
                    let d2 = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2);
                    if d2 <= r2 {
                        out.push((self.order[i] as usize, d2.sqrt()));
                    }
                }
            } else {
                stack.extend([node.left, node.right]);
            }
        }
        out.sort_unstable_by_key(|&(j, _)| j);
        out
    }
}

fn lt(a: (f64, u32), b: (f64, u32)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(n: usize, seed: u64) -> Vec<[f64; 2]> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        // Integer grid coordinates make plenty of distance ties.
        (0..n)
            .map(|_| [(next() * 40.0).floor(), (next() * 40.0).floor()])
            .collect()
    }

    #[test]
    fn nearest_and_within_match_brute_force() {
        let pts = cloud(700, 3);
        let tree = KdTree::new(&pts);
        for (i, &q) in pts.iter().enumerate().step_by(7) {
            let mut all: Vec<(f64, u32)> = (0..pts.len())
                .filter(|&j| j != i)
                .map(|j| {
                    let d2 = (pts[j][0] - q[0]).powi(2) + (pts[j][1] - q[1]).powi(2);
                    (d2, j as u32)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let got: Vec<usize> = tree.nearest(q, 9, Some(i)).iter().map(|p| p.0).collect();
            let want: Vec<usize> = all[..9].iter().map(|p| p.1 as usize).collect();
            assert_eq!(got, want, "query {i}");
            let near: Vec<usize> = tree.within(q, 3.0).iter().map(|p| p.0).collect();
            let mut want: Vec<usize> = all
                .iter()
                .filter(|p| p.0 <= 9.0)
                .map(|p| p.1 as usize)
                .chain([i])
                .collect();
            want.sort_unstable();
            assert_eq!(near, want, "query {i}");
        }
    }

    #[test]
    fn small_and_empty_trees() {
        assert!(KdTree::new(&[]).nearest([0.0, 0.0], 3, None).is_empty());
        let t = KdTree::new(&[[1.0, 1.0], [2.0, 2.0]]);
        assert_eq!(t.nearest([0.0, 0.0], 5, None).len(), 2);
        assert_eq!(t.nearest([0.0, 0.0], 5, Some(0)).len(), 1);
    }
}
