#![no_main]
//! Any bytes dropped as a results bundle (manifest, arrays, names, files,
//! image): an error, or results that write a bundle that reads again.
use libfuzzer_sys::fuzz_target;
use tessera_core::bundle;

fuzz_target!(init: tessera_fuzz::seed("bundle"), |data: &[u8]| {
    if !bundle::is_bundle(data) {
        return;
    }
    if let Ok(r) = bundle::read("fuzz.zip", data) {
        let again = bundle::write(&r).expect("read results write");
        let back = bundle::read("fuzz.zip", &again).expect("written results read");
        assert_eq!((back.n_points(), back.layers.len()), (r.n_points(), r.layers.len()));
    }
});
