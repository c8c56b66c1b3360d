//! The methods, each written once against the compute [`Device`](crate::compute::Device).

pub mod cell2location;
pub mod multiomics;
pub mod named;
pub mod nmf;
pub mod numpy_rng;
pub mod regression;
pub mod svi;
pub mod tangram;
