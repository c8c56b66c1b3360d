#![no_main]
//! Any bytes as a 10x feature-barcode HDF5 file.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera_core::io::tenx::read_h5("fuzz.h5", data.to_vec());
});
