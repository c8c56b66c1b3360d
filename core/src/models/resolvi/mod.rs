//! ResolVI-class correction of segmentation spill-over (scvi-tools'
//! RESOLVI): each cell's counts as its own signal, diffusion from its
//! spatial neighbours and background. So far: the networks' layers, the
//! data preparation, the mixture prior on the latent space and the
//! Dirichlet density.

pub mod analysis;
pub mod de;
pub mod density;
pub mod elbo;
pub mod fit;
pub mod model;
pub mod nn;
pub mod prep;
pub mod prior;
pub mod run;
