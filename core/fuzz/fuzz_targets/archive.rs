#![no_main]
//! Any bytes dropped as a `.zip` (a zipped Space Ranger folder or tables).
use libfuzzer_sys::fuzz_target;
use tessera_core::io::{read, FileSet, TableOptions};

fuzz_target!(|data: &[u8]| {
    let _ = read(
        FileSet::single("fuzz.zip", data.to_vec()),
        &TableOptions::default(),
    );
});
