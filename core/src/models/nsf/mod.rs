//! Nonnegative spatial factorization (NSF, NSFH, PNMF; Townes & Engelhardt,
//! Nature Methods 2023), as the paper's code (willtownes/nsf-paper) fits it:
//! spec §3 of ../shared/specs/METHODS.md.
//!
//! [`prep`]: the paper's preprocessing (Poisson-deviance gene ranking,
//! size factors, coordinates into its box, the split); [`inducing`]: the
//! inducing points; [`init`]: NMF starting values; [`model`]: the
//! objective and its hand-written gradient on a `Device`; [`train`]: the
//! paper's trainer; [`run`]: one fit from a dataset; [`fit`]: the deviance
//! as its benchmark computes it and `interpret_nonneg`; [`export`] and
//! [`analysis`]: files, page and registry. What the models reproduce:
//!
//! - NSF: L independent SVGPs (non-whitened), mean β0 + βᵀx, Matérn-3/2
//!   a²(1+z)e^{−z}, z = √3‖x−x'‖/ℓ (or a² exp(−r²/2ℓ²)); a, ℓ softplus of
//!   raws, initially 1 and 0.1; K_uu + 1e-5 I. At the data, with
//!   α = K_uu⁻¹K_uf: μ̃ = m(x) + αᵀ(δ − m_Z), Σ̃ = a² + 1e-5 − ‖L_u⁻¹K_uf‖² +
//!   ‖Ωᵀα‖², Ω lower triangular (diagonal softplus + 1e-5). S = 3 draws
//!   f = μ̃ + √Σ̃ ε; rate sz Σ_l W_jl e^{f_l}, W ≥ 0 clipped after each step.
//!   KL_l = ½[‖L_u⁻¹Ω‖² + ‖L_u⁻¹(δ − m_Z)‖² − M] + Σ log L_u,mm − Σ log Ω_mm.
//!   Loss per observation: −(J · mean log p − Σ KL / N).
//! - PNMF: h_il ~ N(ploc_l, pscale_l) learnable, q(h) mean-field; rate
//!   sz Σ_l V_jl e^{h_il}; held-out rows draw h from the prior.
//! - NSFH: T spatial + (L − T) nonspatial factors, NMF-initialised factors
//!   sorted by Moran's I, the first T spatial.
//! - Prior of the factors' scale: σ² = ln 2L − ln(L+1), μ0 = −ln L − σ²/2.
//! - Training: Adam (eps 1e-7) lr 0.01, kernel raws at 1e-4 stepped at
//!   epochs 0, 10, 20, … with K_uu's factorisation cached in between;
//!   checkpoints every 50 epochs; a non-finite loss, one above the first
//!   epoch's, or a failed Cholesky restores the last checkpoint and halves
//!   both rates, up to 10 times; converged when a cubic fitted to the last
//!   100 losses changes by under 5e-5 relative, twice running.
//! - The paper interprets exp(mean of 10 draws of f) and predicts with the
//!   mean of exp(f); M is capped at the distinct training locations
//!   (S1/S6's "M1296" is 1,231).
//! - Where this differs from the paper's code: K_fu and K_ff are cached
//!   with K_uu between kernel steps (the paper recomputes them each epoch
//!   from the stepped kernel); Ω starts from Bartlett's decomposition, the
//!   same distribution as chol(0.01² SSᵀ) without an M×M factorisation.

pub mod analysis;
pub mod export;
pub mod fit;
pub mod inducing;
pub mod init;
pub mod model;
pub mod prep;
pub mod run;
pub mod train;
