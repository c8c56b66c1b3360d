//! ResolVI-class correction of segmentation spill-over (scvi-tools'
//! RESOLVI): each cell's counts as its own signal, diffusion from its
//! spatial neighbours and background. So far: the networks' layers and
//! the data preparation.

pub mod nn;
pub mod prep;
