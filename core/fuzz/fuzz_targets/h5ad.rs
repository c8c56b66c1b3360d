#![no_main]
//! Any bytes named `.h5ad`: an error or a dataset, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ds) = tessera_core::io::h5ad::read("fuzz.h5ad", data.to_vec()) {
        let _ = tessera_core::data::Summary::of(&ds, "fuzz", "h5ad");
    }
});
