//! Any body must parse or be refused; a parsed template names only valid variables, and
//! renders whenever every variable has a value, values being inserted as they are.

#![no_main]

use ender_core::template::text::{TemplateText, is_valid_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(template) = TemplateText::parse(&text) else { return };
    let names = template.variables();
    assert!(names.iter().all(|n| is_valid_name(n)), "{names:?}");
    let rendered = template
        .render(|_| Some("{{again}}"))
        .expect("every variable has a value");
    // A value is never parsed again: each variable's place holds the value verbatim.
    assert!(rendered.matches("{{again}}").count() >= names.len());
    let _ = template.preview(|_| None);
});
