//! The body decoder, whatever arrives: the first byte picks the `Content-Type` (JSON, a
//! form, a multipart form, none, another), the rest is the body. It must never panic, and
//! never take long (libFuzzer's `-timeout` catches a blow-up).

#![no_main]

use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=larder-fuzz"),
    None,
    Some("text/plain"),
    Some("multipart/form-data"),
];

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(*first) % CONTENT_TYPES.len()];
    if let Ok(doc) = larder_gateway::decode::decode_body(content_type, body) {
        // What the gateway does next with a decoded document.
        let _ = larder_access::thrivecart::fingerprint(&doc);
        let mut doc = doc;
        larder_access::thrivecart::strip_nul_json(&mut doc);
        assert!(!larder_access::thrivecart::has_nul(&doc));
    }
});
