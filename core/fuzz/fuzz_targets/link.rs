#![no_main]
//! Any share link: the fragment as typed (first byte 0), or any bytes as
//! the link's JSON, deflated and encoded so the fuzzer reaches the settings
//! behind the encoding. A link that decodes must survive the round trip and
//! restore its view into a results bundle.
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tessera_core::bundle;
use tessera_core::share::Link;

/// A small bundle a decoded view is stamped into and read back from.
fn sample() -> &'static [u8] {
    static BUNDLE: OnceLock<Vec<u8>> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let r = bundle::Results {
            analysis: "nhood".into(),
            params: serde_json::json!({}),
            view: serde_json::Value::Null,
            names: vec!["a".into()],
            xy: vec![0.0, 1.0],
            ..Default::default()
        };
        bundle::write(&r).expect("bundle")
    })
}

fuzz_target!(init: tessera_fuzz::seed("link"), |data: &[u8]| {
    let payload = match data.split_first() {
        Some((0, rest)) => String::from_utf8_lossy(rest).into_owned(),
        Some((_, json)) => tessera_fuzz::encode_link(json),
        None => String::new(),
    };
    let Ok(link) = Link::decode(&payload) else {
        return;
    };
    assert_eq!(Link::decode(&link.encode()).as_ref(), Ok(&link));
    let view = serde_json::to_value(&link.view).expect("a view serialises");
    let stamped = bundle::with_view("fuzz.zip", sample(), view.clone()).expect("stamped");
    let back = bundle::read("fuzz.zip", &stamped).expect("read back");
    assert_eq!(back.view, view);
});
