//! Any upload must decode (or be refused), and any text must scan into rows within the
//! limits (or stop with an error naming one), every row becoming a draft or a row error:
//! no panic, rows in file order, no row past a limit.

#![no_main]

use std::ops::ControlFlow;

use ender_core::contact::import_csv::{
    ImportLimits, decode_owned, guess_mapping, row_to_draft, scan_table, sniff_delimiter,
};
use libfuzzer_sys::fuzz_target;

const LIMITS: ImportLimits = ImportLimits {
    max_rows: 50,
    max_fields: 8,
    max_field_chars: 64,
};

fuzz_target!(|data: &[u8]| {
    let Ok((text, _)) = decode_owned(data.to_vec()) else {
        return;
    };
    let delimiter = sniff_delimiter(&text);
    for has_header in [true, false] {
        let mut rows = Vec::new();
        let Ok(shape) = scan_table(&text, delimiter, has_header, &LIMITS, |row| {
            rows.push(row.to_row());
            ControlFlow::Continue(())
        }) else {
            continue;
        };
        assert_eq!(shape.rows, rows.len());
        assert!(shape.rows <= LIMITS.max_rows);
        let mapping = guess_mapping(&shape.headers);
        let mut last = 0;
        for row in &rows {
            assert!(row.line > last, "rows come in file order");
            last = row.line;
            assert!(row.fields.len() <= shape.headers.len());
            assert!(row.fields.len() <= LIMITS.max_fields);
            assert!(row.fields.iter().all(|f| f.chars().count() <= LIMITS.max_field_chars));
            let _ = row_to_draft(row, &mapping, Some("44"));
        }
    }
});
