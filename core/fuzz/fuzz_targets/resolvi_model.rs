#![no_main]
//! Any bytes as the `model.json` that `tessera resolvi de` reads, loaded
//! onto the demo tissue's cells when its sizes match them.
use libfuzzer_sys::fuzz_target;
use tessera_core::compute::cpu::Cpu;
use tessera_core::models::resolvi::fit::read_model;
use tessera_core::models::resolvi::model::Model;

fuzz_target!(init: tessera_fuzz::seed("resolvi_model"), |data: &[u8]| {
    let Ok(m) = read_model("model.json", data) else {
        return;
    };
    let prepared = tessera_fuzz::demo_resolvi();
    if let Ok(model) = Model::load(&Cpu, &m.saved, &prepared.data()) {
        let saved = pollster::block_on(model.save(&Cpu));
        assert_eq!(saved.weights.len(), m.saved.weights.len());
    }
});
