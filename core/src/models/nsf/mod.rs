//! Nonnegative spatial factorization (NSF, NSFH, PNMF; Townes & Engelhardt,
//! Nature Methods 2023), as the paper's code (willtownes/nsf-paper) fits it:
//! spec §3 of ../shared/specs/METHODS.md.
//!
//! This far: the paper's preprocessing ([`prep`]: Poisson-deviance gene
//! ranking, size factors, coordinates rescaled into its box, the
//! train/validation split) and its goodness of fit ([`fit`]: the deviance as
//! its benchmark computes it, `interpret_nonneg`). The models follow.

pub mod fit;
pub mod prep;
