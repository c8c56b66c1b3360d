#![no_main]
//! Any bytes as one or two cell tables (split at the first 0xFF byte).
use libfuzzer_sys::fuzz_target;
use tessera_core::io::{read, FileSet, TableOptions};

fuzz_target!(|data: &[u8]| {
    let mut set = FileSet::default();
    match data.iter().position(|&b| b == 0xFF) {
        Some(i) => {
            set.push("cells.csv", data[..i].to_vec());
            set.push("meta.tsv", data[i + 1..].to_vec());
        }
        None => set.push("cells.csv", data.to_vec()),
    }
    let _ = read(set, &TableOptions::default());
});
