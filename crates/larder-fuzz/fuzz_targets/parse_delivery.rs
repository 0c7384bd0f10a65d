//! The ThriveCart delivery parser on any document a body decodes to (JSON or a form): it
//! must never panic, and what it accepts must hold together.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let content_type = if data.first() == Some(&b'{') {
        Some("application/json")
    } else {
        Some("application/x-www-form-urlencoded")
    };
    let Ok(doc) = larder_gateway::decode::decode_body(content_type, data) else {
        return;
    };
    let _ = larder_access::thrivecart::fingerprint(&doc);
    if let Ok(Some(mut delivery)) = larder_access::thrivecart::parse_delivery(&doc) {
        let products = delivery.products();
        assert!(products.len() <= larder_access::thrivecart::MAX_ITEMS_PER_DELIVERY);
        delivery.strip_nul();
        assert!(!delivery.event.contains('\0'));
    }
});
