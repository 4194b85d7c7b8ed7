//! Contact export: CSV (Excel-friendly, guarded against formula injection) and vCard 3.0.

/// A contact as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportContact {
    pub name: String,
    pub phone: String,
    pub notes: String,
    pub groups: Vec<String>,
}

/// Prefixes an apostrophe to a cell a spreadsheet would read as a formula (starting with
/// `=` `+` `-` `@` TAB or CR).
pub(crate) fn guard_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Appends one CSV record (comma-separated, CRLF-terminated, quoted where needed).
pub(crate) fn push_csv_record(out: &mut Vec<u8>, cells: &[&str]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if cell.contains([',', '"', '\r', '\n']) || cell.starts_with(' ') || cell.ends_with(' ') {
            out.push(b'"');
            out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(cell.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// CSV with the header `name,phone_number,groups,notes` (groups joined by "; "), UTF-8 with a
/// BOM so Excel opens it correctly. Name, notes and groups cells that a spreadsheet would take
/// for a formula get a leading apostrophe; phone numbers are left alone.
pub fn to_csv(contacts: &[ExportContact]) -> Vec<u8> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    push_csv_record(&mut out, &["name", "phone_number", "groups", "notes"]);
    for c in contacts {
        let groups = c.groups.join("; ");
        push_csv_record(
            &mut out,
            &[
                &guard_formula(&c.name),
                &c.phone,
                &guard_formula(&groups),
                &guard_formula(&c.notes),
            ],
        );
    }
    out
}

/// Escapes a vCard text value: backslash, newline, comma and semicolon.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

/// Largest line length in octets, CRLF excluded (RFC 6350 §3.2).
const FOLD_OCTETS: usize = 75;

/// Appends a content line folded at 75 octets (continuations start with a space) without
/// splitting a UTF-8 character, then CRLF.
fn push_line(out: &mut String, line: &str) {
    let mut rest = line;
    let mut limit = FOLD_OCTETS;
    loop {
        if rest.len() <= limit {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        // The leading space counts towards the next line's 75 octets.
        limit = FOLD_OCTETS - 1;
    }
}

/// Splits a display name into (family, given) at the last space, for the `N` property.
fn split_name(name: &str) -> (&str, &str) {
    let name = name.trim();
    match name.rsplit_once(char::is_whitespace) {
        Some((given, family)) => (family.trim(), given.trim()),
        None => ("", name),
    }
}

/// vCard 3.0, one card per contact: BEGIN, VERSION, FN, N, TEL;TYPE=CELL, NOTE and CATEGORIES
/// (the groups; both only when non-empty), END. CRLF line ends, values escaped, lines folded at
/// 75 octets.
pub fn to_vcard(contacts: &[ExportContact]) -> String {
    let mut out = String::with_capacity(contacts.len() * 120);
    for c in contacts {
        push_line(&mut out, "BEGIN:VCARD");
        push_line(&mut out, "VERSION:3.0");
        push_line(&mut out, &format!("FN:{}", escape(&c.name)));
        let (family, given) = split_name(&c.name);
        push_line(&mut out, &format!("N:{};{};;;", escape(family), escape(given)));
        push_line(&mut out, &format!("TEL;TYPE=CELL:{}", escape(&c.phone)));
        if !c.notes.is_empty() {
            push_line(&mut out, &format!("NOTE:{}", escape(&c.notes)));
        }
        let groups: Vec<String> = c
            .groups
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| escape(g))
            .collect();
        if !groups.is_empty() {
            push_line(&mut out, &format!("CATEGORIES:{}", groups.join(",")));
        }
        push_line(&mut out, "END:VCARD");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{import_csv, vcard};
    use super::*;

    fn contact(name: &str, phone: &str, notes: &str, groups: &[&str]) -> ExportContact {
        ExportContact {
            name: name.into(),
            phone: phone.into(),
            notes: notes.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn sample() -> Vec<ExportContact> {
        vec![
            contact(
                "Ana Silva",
                "+15551234567",
                "likes \"tea\", not coffee;\nsecond line",
                &["Friends", "Work"],
            ),
            contact("José Ñúñez 😀", "+442079460958", "", &[]),
            contact("", "+491511234567", "x", &["VIP"]),
            contact("Back\\slash, Esq.", "+33123456789", "a\\nb", &["A,B", "C;D"]),
        ]
    }

    #[test]
    fn csv_has_bom_header_and_rows() {
        let csv = to_csv(&[contact("Ana", "+15551234567", "a, \"b\"", &["X", "Y"])]);
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "\u{feff}name,phone_number,groups,notes\r\nAna,+15551234567,X; Y,\"a, \"\"b\"\"\"\r\n"
        );
    }

    #[test]
    fn csv_guards_against_formulas() {
        let csv = to_csv(&[
            contact("=HYPERLINK(\"x\")", "+15551234567", "-2", &["@g", "h"]),
            contact("+1 guy", "+15551234568", "\tx", &[]),
        ]);
        let text = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[1], "\"'=HYPERLINK(\"\"x\"\")\",+15551234567,'@g; h,'-2");
        assert_eq!(lines[2], "'+1 guy,+15551234568,,'\tx");
    }

    #[test]
    fn csv_round_trips_through_the_importer() {
        let contacts = sample();
        let (text, enc) = import_csv::decode(&to_csv(&contacts)).unwrap();
        assert_eq!(enc, import_csv::TextEncoding::Utf8);
        let delimiter = import_csv::sniff_delimiter(&text);
        assert_eq!(delimiter, b',');
        let table = import_csv::parse_table(&text, delimiter, true).unwrap();
        let mapping = import_csv::guess_mapping(&table.headers);
        assert_eq!(
            mapping,
            import_csv::ColumnMapping {
                name: Some(0),
                phone: Some(1),
                notes: Some(3),
                groups: Some(2)
            }
        );
        let drafts: Vec<_> = import_csv::rows_to_drafts(&table, &mapping, None)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(drafts.len(), contacts.len());
        for (d, c) in drafts.iter().zip(&contacts) {
            assert_eq!(d.name, c.name);
            assert_eq!(d.phone, c.phone);
            assert_eq!(d.notes, c.notes);
        }
        assert_eq!(drafts[0].groups, ["Friends", "Work"]);
        assert_eq!(drafts[2].groups, ["VIP"]);
        // Groups are split on ';' on import, so "C;D" comes back as two.
        assert_eq!(drafts[3].groups, ["A,B", "C", "D"]);
    }

    #[test]
    fn vcard_shape() {
        let card = to_vcard(&[contact(
            "Ana Maria Silva",
            "+15551234567",
            "a;b,c\nd\\",
            &["X", "Y,Z"],
        )]);
        assert_eq!(
            card,
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ana Maria Silva\r\nN:Silva;Ana Maria;;;\r\n\
             TEL;TYPE=CELL:+15551234567\r\nNOTE:a\\;b\\,c\\nd\\\\\r\nCATEGORIES:X,Y\\,Z\r\nEND:VCARD\r\n"
        );
        let bare = to_vcard(&[contact("", "+15551234567", "", &[])]);
        assert_eq!(
            bare,
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:\r\nN:;;;;\r\nTEL;TYPE=CELL:+15551234567\r\nEND:VCARD\r\n"
        );
    }

    #[test]
    fn vcard_lines_are_folded_at_75_octets_on_char_boundaries() {
        let notes = "é😀a".repeat(60);
        let card = to_vcard(&[contact("Ana", "+15551234567", &notes, &[])]);
        for line in card.split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
        }
        let unfolded = card.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("NOTE:{notes}\r\n")));
        assert!(card.contains("\r\n "));
    }

    #[test]
    fn vcard_round_trips_through_the_parser() {
        let contacts = sample();
        let entries = vcard::parse(&to_vcard(&contacts));
        assert_eq!(entries.len(), contacts.len());
        for (e, c) in entries.iter().zip(&contacts) {
            assert_eq!(e.name, c.name);
            assert_eq!(e.notes, c.notes);
            assert_eq!(e.phones.len(), 1);
            assert_eq!(e.phones[0].number, c.phone);
            assert_eq!(e.phones[0].kind.as_deref(), Some("cell"));
            assert_eq!(e.categories, c.groups);
        }
        let drafts: Vec<_> = vcard::entries_to_drafts(&entries, None)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(drafts[0].name, "Ana Silva");
        assert_eq!(drafts[0].groups, ["Friends", "Work"]);
        assert_eq!(drafts[1].phone, "+442079460958");
    }
}
