//! `Click::decode` of arbitrary stored text (a corrupt or foreign Redis value).
//!
//! Properties: never panics; an accepted record re-encodes to a record that
//! decodes to the same click (decode ∘ encode is the identity on decoded
//! clicks), and the encoding keeps its 12 NUL-separated fields.
#![no_main]

use clickback::domain::{Click, ClickId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(stored) = std::str::from_utf8(data) else {
        return;
    };
    let id = ClickId::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("valid id");
    let Ok(click) = Click::decode(id.clone(), stored) else {
        return;
    };
    let encoded = click.encode();
    assert_eq!(encoded.split('\0').count(), 13, "{encoded:?}");
    assert_eq!(
        Click::decode(id, &encoded),
        Ok(click),
        "{stored:?} -> {encoded:?}"
    );
});
