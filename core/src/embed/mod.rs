//! Embeddings and clustering of per-spot profiles (region clustering of
//! cell2location's abundances, as the tutorial does with scanpy): exact kNN,
//! UMAP connectivities and layout, Leiden.

pub mod knn;
pub mod leiden;
pub mod umap;
